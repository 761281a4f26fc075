// The one health rule (commands.ts: HEALTH_RULE), run in a real bash inside the scripts that use it
// (the deploy's health check and mode: status), fed every container state Docker reports. `docker`
// and `curl` are stand-ins on the PATH: the stand-in docker answers `compose ps` with the containers'
// IDs and `inspect` with their CONTAINER_FORMAT lines, as a real one would.
import { spawnSync } from 'node:child_process'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from '@jest/globals'
import * as commands from '../../src/remote/commands.js'
import { tempDirs } from './fixtures/temp.js'

const tempDir = tempDirs()
const URL = 'http://127.0.0.1:18789/health'

/** A container as `docker inspect` describes it, in CONTAINER_FORMAT's fields. */
interface State {
  status: string
  restarting?: boolean
  restarts?: number
  exitCode?: number
  /** HostConfig.RestartPolicy.Name: `no` (Docker's word when none) or e.g. `unless-stopped`. */
  policy: string
}

const line = (service: string, s: State) =>
  [service, 'reg.test/openclaw:v1', 'sha256:abc', s.status, String(s.restarting ?? false), String(s.restarts ?? 0), String(s.exitCode ?? 0), s.policy].join('|')

/** A project folder and a PATH whose `docker` reports `containers` and whose `curl` answers `http`. */
function server(containers: Array<[string, State]>, http = '200'): { dir: string; env: NodeJS.ProcessEnv; calls: () => string[] } {
  const dir = tempDir('openclaw-health-')
  const bin = tempDir('openclaw-bin-')
  writeFileSync(join(dir, 'docker-compose.yml'), 'services: {}\n')
  writeFileSync(join(bin, 'ids'), containers.map((_, i) => `c${i}\n`).join(''))
  writeFileSync(join(bin, 'lines'), containers.map(([service, state]) => `${line(service, state)}\n`).join(''))
  writeFileSync(
    join(bin, 'docker'),
    `#!/bin/sh
printf '%s\\n' "$*" >> '${bin}/calls'
case "$1 $2" in
  "compose ps") cat '${bin}/ids' ;;
  inspect*) cat '${bin}/lines' ;;
  *) echo "the stand-in docker was not asked for this: $*" >&2; exit 1 ;;
esac
`
  )
  writeFileSync(join(bin, 'curl'), `#!/bin/sh\nprintf '%s' '${http}'\n`)
  chmodSync(join(bin, 'docker'), 0o755)
  chmodSync(join(bin, 'curl'), 0o755)
  const calls = () => readFileSync(join(bin, 'calls'), 'utf8').trim().split('\n')
  return { dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, calls }
}

function run(command: commands.RemoteCommand, env: NodeJS.ProcessEnv) {
  const out = spawnSync('bash', ['-c', command.script, `openclaw-${command.step}`, ...command.args], { encoding: 'utf8', env, timeout: 20_000 })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: commands.parseFacts(out.stdout) }
}

/** Both scripts' verdict on the same server: they must agree (one rule), and the deploy's check is final after one probe (timeout 0). */
function verdicts(containers: Array<[string, State]>, http = '200'): { healthy: boolean; containers: string } {
  const s = server(containers, http)
  const status = run(commands.statusProbe(s.dir, 'OPENCLAW_IMAGE', URL, []), s.env)
  const health = run(commands.healthCheck(s.dir, URL, 0, [], false), s.env)
  expect(status.stderr).toBe('')
  expect(health.stderr).toBe('')
  for (const r of [status, health]) expect([0, commands.EXIT_CODE.unhealthy]).toContain(r.code)
  expect(health.code).toBe(status.code)
  expect(health.facts.get('containers')).toEqual(status.facts.get('containers'))
  expect(health.facts.get('health')).toEqual([status.code === 0 ? 'ok' : 'failed'])
  return { healthy: status.code === 0, containers: status.facts.get('containers')![0]! }
}

const GATEWAY: [string, State] = ['openclaw-gateway', { status: 'running', policy: 'unless-stopped' }]

// [what, whether the rule calls it a failure, the container's state]
const STATES: Array<[string, 'ok' | 'bad', State]> = [
  ['running, restart policy unless-stopped', 'ok', { status: 'running', policy: 'unless-stopped' }],
  ['running, no restart policy', 'ok', { status: 'running', policy: 'no' }],
  ['restarting (a crash loop)', 'bad', { status: 'restarting', restarting: true, restarts: 4, exitCode: 1, policy: 'unless-stopped' }],
  ['exited 0, no restart policy (openclaw-cli without a command)', 'ok', { status: 'exited', exitCode: 0, policy: 'no' }],
  ['exited 0, no restart policy, the policy field empty', 'ok', { status: 'exited', exitCode: 0, policy: '' }],
  ['exited 0, restart policy unless-stopped', 'bad', { status: 'exited', exitCode: 0, policy: 'unless-stopped' }],
  ['exited 1, no restart policy', 'bad', { status: 'exited', exitCode: 1, policy: 'no' }],
  ['exited 137 (killed), no restart policy', 'bad', { status: 'exited', exitCode: 137, policy: 'no' }],
  ['created, never started, no restart policy', 'ok', { status: 'created', policy: 'no' }],
  ['created, never started, restart policy always', 'bad', { status: 'created', policy: 'always' }],
  ['dead', 'bad', { status: 'dead', exitCode: 0, policy: 'no' }],
  ['paused, restart policy unless-stopped', 'bad', { status: 'paused', policy: 'unless-stopped' }],
  ['paused, no restart policy', 'bad', { status: 'paused', policy: 'no' }],
  ['being removed', 'bad', { status: 'removing', policy: 'no' }]
]

describe('the health rule, in bash, for deploy and status alike', () => {
  it.each(STATES)('beside a running gateway, a container %s is %s', (_what, verdict, state) => {
    const judged = verdicts([GATEWAY, ['other', state]])
    const policy = state.policy || 'no'
    const shownState = state.restarting ? 'restarting' : state.status
    expect(judged.containers).toBe(`openclaw-gateway:running:0:0:unless-stopped:ok other:${shownState}:${state.exitCode ?? 0}:${state.restarts ?? 0}:${policy}:${verdict}`)
    expect(judged.healthy).toBe(verdict === 'ok')
  })

  it.each(STATES)('alone, a container %s (%s): healthy only when it runs and is ok', (_what, verdict, state) => {
    expect(verdicts([['openclaw-gateway', state]]).healthy).toBe(verdict === 'ok' && state.status === 'running')
  })

  it('takes the restarting flag over the status Docker gives with it', () => {
    const judged = verdicts([GATEWAY, ['other', { status: 'running', restarting: true, restarts: 1, policy: 'always' }]])
    expect(judged).toEqual({ healthy: false, containers: 'openclaw-gateway:running:0:0:unless-stopped:ok other:restarting:0:1:always:bad' })
  })

  it('is not healthy without containers, nor when the URL does not answer 2xx', () => {
    expect(verdicts([])).toEqual({ healthy: false, containers: 'none' })
    expect(verdicts([GATEWAY], '500')).toMatchObject({ healthy: false, containers: 'openclaw-gateway:running:0:0:unless-stopped:ok' })
    expect(verdicts([GATEWAY], '000').healthy).toBe(false)
    expect(verdicts([GATEWAY], '204').healthy).toBe(true)
  })

  it("upstream's project as docker-setup.sh leaves it: a running gateway and an exited openclaw-cli are healthy", () => {
    expect(verdicts([['openclaw-cli', { status: 'exited', exitCode: 0, policy: 'no' }], GATEWAY])).toEqual({
      healthy: true,
      containers: 'openclaw-cli:exited:0:0:no:ok openclaw-gateway:running:0:0:unless-stopped:ok'
    })
  })

  it('asks Docker for the fields the rule reads, in its order, and only for the services given', () => {
    const s = server([GATEWAY])
    expect(run(commands.healthCheck(s.dir, URL, 0, ['openclaw-gateway'], false), s.env).code).toBe(0)
    const [ps, inspect] = s.calls()
    expect(ps).toBe('compose ps -a -q -- openclaw-gateway')
    const format = inspect!.replace(/^inspect --format /, '').replace(/ -- c0$/, '')
    expect(format.split('|')).toEqual([
      '{{index .Config.Labels "com.docker.compose.service"}}',
      '{{.Config.Image}}',
      '{{.Image}}',
      '{{.State.Status}}',
      '{{.State.Restarting}}',
      '{{.RestartCount}}',
      '{{.State.ExitCode}}',
      '{{.HostConfig.RestartPolicy.Name}}'
    ])
  })
})
