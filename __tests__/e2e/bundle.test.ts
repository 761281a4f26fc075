// The committed bundle runs as the runner runs it, on Node 24 (what `runs.using: node24` gets on
// GitHub's hosted runners) and on the Node running the tests. The e2e global setup sets ACTION_NODE
// to Node 24 (scripts/dev/test-prereqs.sh); without it these checks fail, they are never skipped.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from '@jest/globals'
import { runAction, scratchDir } from '../rig/fleet.js'

const node24 = process.env.ACTION_NODE
/** Why there is no Node 24 to run the bundle on, or '' when there is. */
function node24Problem(): string {
  if (!node24) return 'ACTION_NODE is not set: the e2e global setup sets it (scripts/dev/test-prereqs.sh prints the path)'
  const version = spawnSync(node24, ['--version'], { encoding: 'utf8' })
  if (version.error) return `ACTION_NODE=${node24} does not run: ${version.error.message}`
  if (!/^v24\./.test(version.stdout)) return `ACTION_NODE=${node24} is Node ${version.stdout.trim() || '(no version)'}, not Node 24`
  return ''
}
const runtimes: Array<[string, string]> = [
  ['the Node running the tests', process.execPath],
  ['Node 24, ACTION_NODE', node24 ?? 'ACTION_NODE is not set']
]

describe('the bundle', () => {
  it('has Node 24 to run on', () => {
    expect(node24Problem()).toBe('')
  })

  it.each(runtimes)('fails with a clear message without ssh-private-key (%s)', async (_label, node) => {
    const run = await runAction({}, { node })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('::error::The action inputs are not valid (1 problem):%0A  - Input "ssh-private-key" is required')
  })

  it.each(runtimes)('loads ssh2 and reads inputs exactly as the runner passes them (%s)', async (_label, node) => {
    const run = await runAction({ 'ssh-private-key': 'not a key', mode: 'rollout', 'max-parallel': 'ten' }, { node })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('Input "mode" is "rollout"; allowed: deploy, rollback, status, rotate-token, rotate-key.')
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
