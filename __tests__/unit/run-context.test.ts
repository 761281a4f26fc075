// The run's context: the deploy lock's token, derived from the run in GitHub Actions so that the post
// step of a cancelled run (src/cleanup.ts) finds the locks of a main step killed before it could save
// anything; and the connections it opens, to a server behind a jump host with in-process ssh2 servers.
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals'
import * as core from '../__fixtures__/core.js'
import { RUNNER_ENV, SSH_KEY as KEY } from '../__fixtures__/runner-env.js'
import { inputReaders } from './fixtures/inputs.js'
import { ed25519KeyPair } from './fixtures/keys.js'
import { makeServer } from './fixtures/servers.js'
import { publicBlob, sshServer } from './fixtures/ssh-server.js'

jest.unstable_mockModule('@actions/core', () => core)
const { createRunContext, describeRun, lockToken } = await import('../../src/deploy/run-context.js')
const { fingerprint } = await import('../../src/remote/host-keys.js')
const { readSettings } = await import('../../src/settings.js')
const { read } = inputReaders(readSettings)

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

describe('a server behind a jump host', () => {
  const bastionHostKey = ed25519KeyPair()
  const targetHostKey = ed25519KeyPair()
  const deployKey = ed25519KeyPair()
  const jumpKey = ed25519KeyPair()
  // the bastion would take either key: it records which one logged in
  const bastion = sshServer(bastionHostKey, deployKey, jumpKey)
  const target = sshServer(targetHostKey, deployKey)
  let server: ReturnType<typeof makeServer>
  beforeAll(async () => {
    const jump = { host: '127.0.0.1', port: await bastion.listen(), user: 'ops', hostKeys: [fingerprint(publicBlob(bastionHostKey))] }
    server = makeServer('acme-1', 'acme', undefined, { host: '127.0.0.1', port: await target.listen(), hostKeys: [fingerprint(publicBlob(targetHostKey))], jump })
  })
  afterAll(async () => {
    await Promise.all([bastion.close(), target.close()])
  })
  afterEach(() => {
    bastion.reset()
    target.reset()
  })

  it.each([
    ['jump-private-key when it is set', jumpKey.private, 1],
    ['ssh-private-key when jump-private-key is empty', '', 0]
  ])('logs in to the jump host with %s, and to the server with ssh-private-key', async (_which, jumpPrivateKey, bastionKey) => {
    const run = createRunContext(read({ 'ssh-private-key': deployKey.private, 'jump-private-key': jumpPrivateKey }), new AbortController().signal)
    try {
      const shell = await run.connect(server, new AbortController().signal)
      await expect(shell.run({ step: 'small', script: 'true', args: [] }, 10)).resolves.toMatchObject({ code: 0, stdout: 'result=ok' })
      shell.close()
    } finally {
      run.close()
    }
    expect(bastion.stats).toMatchObject({ connections: 1, keys: [bastionKey], forwards: [`127.0.0.1:${server.port}`] })
    expect(target.stats).toMatchObject({ connections: 1, keys: [0] })
  })
})
