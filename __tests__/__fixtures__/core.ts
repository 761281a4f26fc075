// A typed stand-in for @actions/core in unit tests, as in actions/typescript-action: register it with
//   jest.unstable_mockModule('@actions/core', () => core)
// before `await import(...)` of the module under test (static imports are linked before that line
// runs, so they would get the real one). It prints nothing: what the real module writes to stdout as
// a workflow command (`::add-mask::`, `::warning::`, ...) becomes a recorded call to assert on.
// It has what src/ calls; a module under test that calls anything else fails loudly (not a function).
import type * as actionsCore from '@actions/core'
import { jest } from '@jest/globals'

export const getInput = jest.fn<typeof actionsCore.getInput>(() => '')
export const setSecret = jest.fn<typeof actionsCore.setSecret>()
export const info = jest.fn<typeof actionsCore.info>()
export const warning = jest.fn<typeof actionsCore.warning>()
export const error = jest.fn<typeof actionsCore.error>()
export const startGroup = jest.fn<typeof actionsCore.startGroup>()
export const endGroup = jest.fn<typeof actionsCore.endGroup>()
export const setOutput = jest.fn<typeof actionsCore.setOutput>()
export const setFailed = jest.fn<typeof actionsCore.setFailed>()
