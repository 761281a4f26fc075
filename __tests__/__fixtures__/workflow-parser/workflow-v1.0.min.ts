// @actions/workflow-parser (0.3.61, the latest) imports its schemas without an import attribute,
// which jest deprecates (and Node itself refuses); jest.config.js maps that import here, to the
// same file imported with one.
import schema from '../../../node_modules/@actions/workflow-parser/dist/workflow-v1.0.min.json' with { type: 'json' }

export default schema
