// The committed bundle runs as the runner runs it, on Node 20 and on Node 24 (what `runs.using:
// node24` gets on GitHub's hosted runners). In CI, Node 24 is required: ACTION_NODE points at it.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from '@jest/globals'
import { runAction, scratchDir } from '../rig/fleet.js'

const node24 = process.env.ACTION_NODE
const runtimes: Array<[string, string]> = [['the Node running the tests', process.execPath]]
if (node24) runtimes.push(['ACTION_NODE', node24])

describe('the bundle', () => {
  it('has Node 24 to run on in CI', () => {
    if (process.env.CI !== 'true') return
    expect(node24).toBeTruthy()
    expect(spawnSync(node24!, ['--version'], { encoding: 'utf8' }).stdout).toMatch(/^v24\./)
  })

  it.each(runtimes)('fails with a clear message without ssh-private-key (%s)', async (_label, node) => {
    const run = await runAction({}, { node })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('::error::The action inputs are not valid (1 problem):%0A  - Input "ssh-private-key" is required')
  })

  it.each(runtimes)('loads ssh2 and reads inputs exactly as the runner passes them (%s)', async (_label, node) => {
    const run = await runAction({ 'ssh-private-key': 'not a key', mode: 'rollout', 'max-parallel': 'ten' }, { node })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('Input "mode" is "rollout"; allowed: deploy, rollback, status.')
    expect(run.stdout).toContain('Input "max-parallel" is "ten"; allowed: a whole number from 1 to 1000.')
    expect(run.stderr).toBe('')
  })

  it.each(runtimes)('exits with its code once the run is done, even with a timer left running (%s)', async (_label, node) => {
    // what a library's forgotten interval or a socket to a vanished server does: keep the event loop alive
    const leak = join(scratchDir('leak'), 'leak.cjs')
    writeFileSync(leak, 'setInterval(() => {}, 1000)\n')
    const run = await runAction({ 'ssh-private-key': 'not a key', mode: 'rollout' }, { node, env: { NODE_OPTIONS: `--require ${leak}` }, timeoutMs: 30_000 })
    expect(run.timedOut).toBe(false)
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('Input "mode" is "rollout"')
    expect(run.durationMs).toBeLessThan(15_000)
  })
})
