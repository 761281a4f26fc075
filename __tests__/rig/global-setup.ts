// Jest globalSetup of the e2e project: install what the tests need when it is missing and set
// ACTION_NODE to Node 24 (scripts/dev/test-prereqs.sh), then bring up the rig (RIG_SERVERS servers,
// default 8). RIG_REUSE=1: reuse a rig that is already up (reset to its baseline) and leave it up
// afterwards. Missing packages or Node 24, or a rig that cannot be brought up, fail the run with the
// reason; e2e tests are never skipped for want of them.
// (Jest loads this file outside its module system: it imports only node builtins, not ./fleet.ts.)
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

function rigSh(rootDir: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('bash', [join(rootDir, '__tests__', 'rig', 'rig.sh'), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024
  })
  if (r.error) throw r.error
  if (r.stderr) process.stderr.write(r.stderr)
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr }
}

/** Installs what is missing; returns the Node binary the action is to run on (ACTION_NODE, else Node 24). */
function testPrereqs(rootDir: string): string {
  // its log (apt, npm) goes straight to the terminal as it happens; stdout is the one path
  const r = spawnSync('bash', [join(rootDir, 'scripts', 'dev', 'test-prereqs.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (r.error) throw r.error
  const node = r.stdout.trim()
  if (r.status !== 0 || !node) {
    throw new Error(`scripts/dev/test-prereqs.sh failed (exit ${r.status}; its messages are above): the e2e tests need the rig's and the operator kit's packages, and Node 24 to run the action on`)
  }
  return node
}

export default async function globalSetup(_globalConfig: unknown, projectConfig: { rootDir: string }): Promise<void> {
  const rootDir = projectConfig.rootDir
  const wanted = Number(process.env.RIG_SERVERS ?? '8')
  if (!Number.isInteger(wanted) || wanted < 1) throw new Error(`RIG_SERVERS must be a positive integer, not ${process.env.RIG_SERVERS}`)
  // the tests (and the processes they start) read it; jest starts them after this returns
  process.env.ACTION_NODE = testPrereqs(rootDir)
  const reuse = process.env.RIG_REUSE === '1'
  // read by global-teardown (same process)
  process.env.OPENCLAW_RIG_KEEP = reuse ? '1' : ''

  const status = rigSh(rootDir, 'status')
  if (status.code === 0 && reuse) {
    const rigDir = (process.env.RIG_DIR ?? '/tmp/openclaw-rig').replace(/\/+$/, '')
    const fleet = JSON.parse(readFileSync(join(rigDir, 'fleet.json'), 'utf8')) as { docker: boolean; servers: unknown[] }
    if (fleet.docker && fleet.servers.length === wanted) {
      process.stderr.write(`\n[rig] reusing the rig that is up (${wanted} servers): resetting it\n`)
      if (rigSh(rootDir, 'reset', 'all').code === 0) return
      process.stderr.write('[rig] reset failed: bringing the rig up anew\n')
    }
  }
  if (!/^down\b/.test(status.stdout)) {
    // a rig from an earlier run (up, degraded or half torn down): start clean
    const down = rigSh(rootDir, 'down')
    if (down.code !== 0) throw new Error(`could not tear down the previous rig (rig.sh down, exit ${down.code})`)
  }
  process.stderr.write(`\n[rig] bringing up ${wanted} servers\n`)
  const up = rigSh(rootDir, 'up', String(wanted))
  if (up.code !== 0) throw new Error(`the test rig did not come up (rig.sh up ${wanted}, exit ${up.code}):\n${up.stderr}`)
}
