import path from 'node:path'
import { fileURLToPath } from 'node:url'

// ncc bundles CommonJS dependencies (ssh2, cpu-features) into an ES module, where `__dirname` and
// `__filename` do not exist. ssh2 reads them while loading, so define them before it loads.
const globals = globalThis as { __dirname?: string; __filename?: string }
globals.__filename ??= fileURLToPath(import.meta.url)
globals.__dirname ??= path.dirname(globals.__filename)
