// Jest globalTeardown of the e2e project: tear the rig down (not when RIG_REUSE=1 asked to keep it).
// (Jest loads this file outside its module system: it imports only node builtins.)
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

export default async function globalTeardown(_globalConfig: unknown, projectConfig: { rootDir: string }): Promise<void> {
  if (process.env.OPENCLAW_RIG_KEEP === '1') {
    process.stderr.write('\n[rig] RIG_REUSE=1: leaving the rig up (bash __tests__/rig/rig.sh down removes it)\n')
    return
  }
  const r = spawnSync('bash', [join(projectConfig.rootDir, '__tests__', 'rig', 'rig.sh'), 'down'], {
    encoding: 'utf8',
    stdio: ['ignore', 'inherit', 'inherit']
  })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`rig.sh down failed (exit ${r.status})`)
}
