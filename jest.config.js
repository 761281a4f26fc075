// Two projects: unit tests run in parallel and fake what they like; end-to-end tests drive the
// bundled action against the real fleet (sshd + dockerd in network namespaces) one file at a time.
const common = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { ignoreCodes: [151002] } }]
  }
}

export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/__tests__/unit/**/*.test.ts'],
      moduleNameMapper: {
        ...common.moduleNameMapper,
        // (see __tests__/__fixtures__/workflow-parser/: the parser's schema imports, with an import attribute)
        '^\\.\\./((?:action|workflow)-v1\\.0\\.min)\\.json$': '<rootDir>/__tests__/__fixtures__/workflow-parser/$1.ts'
      }
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/__tests__/e2e/**/*.test.ts'],
      globalSetup: '<rootDir>/__tests__/rig/global-setup.ts',
      globalTeardown: '<rootDir>/__tests__/rig/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/__tests__/e2e/timeouts.ts']
    }
  ]
}
