// The deploy lock's token: derived from the run in GitHub Actions, so that the post step of a
// cancelled run (src/cleanup.ts) finds the locks of a main step killed before it could save anything.
import { describe, expect, it, jest } from '@jest/globals'
import * as core from '../__fixtures__/core.js'
import { RUNNER_ENV, SSH_KEY as KEY } from '../__fixtures__/runner-env.js'

jest.unstable_mockModule('@actions/core', () => core)
const { describeRun, lockToken } = await import('../../src/deploy/run-context.js')

describe("the lock token: derived from the run in GitHub Actions, so the post step finds the killed step's locks", () => {
  it('is the same for the main step and its post step, and 16 hex digits', () => {
    const main = lockToken({ ...RUNNER_ENV }, KEY)
    expect(main).toMatch(/^[0-9a-f]{16}$/)
    expect(lockToken({ ...RUNNER_ENV }, KEY)).toBe(main)
    expect(describeRun({ ...RUNNER_ENV }, KEY).holder).toMatch(new RegExp(` token=${main}$`))
  })

  it('differs for another run, attempt, job, step or matrix leg, and without the SSH key', () => {
    const main = lockToken(RUNNER_ENV, KEY)
    const others = [
      { GITHUB_RUN_ID: '1234567891' },
      { GITHUB_RUN_ATTEMPT: '2' },
      { GITHUB_JOB: 'deploy-eu' },
      // a second use of the action in the same job
      { GITHUB_ACTION: '__openclaw_openclaw-deploy-action_2' },
      // a leg of the same matrix job on another runner
      { RUNNER_NAME: 'GitHub Actions 8', RUNNER_TRACKING_ID: 'github_0a6e0f1b-3b2b-4a59-9c93-a7d0e8b4c1f5' },
      { RUNNER_TRACKING_ID: 'github_0a6e0f1b-3b2b-4a59-9c93-a7d0e8b4c1f5' }
    ].map(change => lockToken({ ...RUNNER_ENV, ...change }, KEY))
    expect(new Set([main, ...others]).size).toBe(others.length + 1)
    // everything in the public log is not enough to compute it
    expect(lockToken(RUNNER_ENV, '')).not.toBe(main)
    expect(lockToken(RUNNER_ENV, 'another key')).not.toBe(main)
  })

  it('is random outside GitHub Actions (no GITHUB_RUN_ID)', () => {
    const a = lockToken({}, KEY)
    expect(a).toMatch(/^[0-9a-f]{16}$/)
    expect(lockToken({}, KEY)).not.toBe(a)
  })
})
