// Per-tenant configuration from the workflow (tenant-env) and gateway token rotation, on upstream
// OpenClaw's project: values land in .env as Compose reads them, a change is health-gated and rolled
// back byte for byte, nothing restarts when nothing changed, and no value shows in any output.
import { beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, envOf, healthOf, readFleet, resultsOf, statusOf, rig, runAction, server, serverExec, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'

let fleet: Fleet
let registryFile: string

// Every awkward character a credential can hold: quotes of both kinds, spaces, $ and ${…}, #, a
// backslash, a tab and a line break.
const AWKWARD = `sk-ant-'single' "double" $HOME \${OPENCLAW_IMAGE} #not-a-comment back\\slash\ttab\nsecond line`
const PLAIN_SECRET = 'sk-proj-e2e-0123456789abcdef0123456789abcdef'

function act(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction({ 'servers-file': registryFile, ...actionKeyInputs(fleet), 'health-timeout': '8', ...inputs })
}

async function sh(name: string, command: string): Promise<string> {
  const r = await serverExec(name, command)
  if (r.code !== 0) throw new Error(`${name}: ${command}: exit ${r.code}: ${r.stderr}`)
  return r.stdout.trim()
}

/** What the running gateway has in its environment for these variables, byte for byte. */
async function composeEnv(name: string, variables = ['CLAUDE_AI_SESSION_KEY', 'OPENAI_API_KEY', 'OPENCLAW_SKIP_BROWSER_CONTROL_SERVER', 'OPENCLAW_GATEWAY_TOKEN']): Promise<Record<string, string>> {
  const values: Record<string, string> = {}
  for (const variable of variables) {
    const r = await serverExec(name, `docker compose exec -T openclaw-gateway sh -c 'printf %s "$${variable}"'`)
    if (r.code !== 0) throw new Error(`${name}: reading ${variable} in the gateway: ${r.stderr}`)
    values[variable] = r.stdout
  }
  return values
}
const gatewayStarted = (name: string) => sh(name, "docker inspect --format '{{.Id}} {{.State.StartedAt}}' $(docker compose ps -q openclaw-gateway)")
const tokenOf = (name: string) => /^OPENCLAW_GATEWAY_TOKEN=(.*)$/m.exec(envOf(server(fleet, name)))?.[1]

/** No value, as text, a line of it, base64 or hex, in the log, stderr, summary or outputs. */
function expectNoValue(run: ActionRun, values: string[]): void {
  const shown = [run.stdout.replace(/^::add-mask::.*$/gm, ''), run.stderr, run.summary, JSON.stringify(run.outputs)].join('\n')
  const forms = values.flatMap(v => [v, ...v.split('\n'), Buffer.from(v).toString('base64'), Buffer.from(v).toString('hex')]).filter(f => f.length >= 8)
  expect(forms.filter(f => shown.includes(f))).toEqual([])
}

beforeAll(async () => {
  fleet = readFleet()
  registryFile = writeRegistry(fleet, ['s1', 's2', 's3'])
})

beforeEach(async () => {
  await Promise.all(['s1', 's2', 's3'].map(name => rig('reset', name)))
})

describe('tenant-env', () => {
  const tenantEnv = JSON.stringify({
    '*': { OPENCLAW_SKIP_BROWSER_CONTROL_SERVER: '1' },
    'tenant-s1': { CLAUDE_AI_SESSION_KEY: AWKWARD, OPENAI_API_KEY: PLAIN_SECRET }
  })

  it('sets two variables for one tenant and one for all, with a new image; Compose reads every value back exactly', async () => {
    const before = envOf(server(fleet, 's2'))
    const run = await act({ image: fleet.images.v2, 'tenant-env': tenantEnv })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s1: 'deployed', s2: 'deployed', s3: 'deployed' })
    expect(
      resultsOf(run)
        .find(r => r.name === 's1')!
        .changedVariables!.sort()
    ).toEqual(['CLAUDE_AI_SESSION_KEY', 'OPENAI_API_KEY', 'OPENCLAW_SKIP_BROWSER_CONTROL_SERVER'])
    expect(resultsOf(run).find(r => r.name === 's2')!.changedVariables).toEqual(['OPENCLAW_SKIP_BROWSER_CONTROL_SERVER'])
    const s1 = await composeEnv('s1')
    expect(s1.CLAUDE_AI_SESSION_KEY).toBe(AWKWARD)
    expect(s1.OPENAI_API_KEY).toBe(PLAIN_SECRET)
    expect(s1.OPENCLAW_SKIP_BROWSER_CONTROL_SERVER).toBe('1')
    expect((await composeEnv('s2')).CLAUDE_AI_SESSION_KEY).not.toBe(AWKWARD)
    // s2: only the image line and the one variable changed
    expect(envOf(server(fleet, 's2'))).toBe(before.replace(`OPENCLAW_IMAGE=${fleet.images.v1}\n`, `OPENCLAW_IMAGE=${fleet.images.v2}\n`) + 'OPENCLAW_SKIP_BROWSER_CONTROL_SERVER=1\n')
    for (const name of ['s1', 's2', 's3']) expect(await healthOf(name)).toBe('v2')
    expectNoValue(run, [AWKWARD, PLAIN_SECRET])
    expect(run.summary).toContain('CLAUDE_AI_SESSION_KEY')
  })

  it('without a new image; the same values again restart nothing (unchanged)', async () => {
    const first = await act({ 'tenant-env': tenantEnv, servers: 's1' })
    expect(statusOf(first)).toEqual({ s1: 'deployed' })
    expect(await healthOf('s1')).toBe('v1')
    const started = await gatewayStarted('s1')
    const again = await act({ 'tenant-env': tenantEnv, servers: 's1' })
    expect(statusOf(again)).toEqual({ s1: 'unchanged' })
    expect(await gatewayStarted('s1')).toBe(started)
    expectNoValue(again, [AWKWARD, PLAIN_SECRET])
  })

  it('a value that makes the gateway unhealthy is rolled back: .env byte for byte, the previous image runs', async () => {
    const before = envOf(server(fleet, 's3'))
    // the gateway then publishes another port than the one its health URL asks
    const run = await act({ image: fleet.images.v2, servers: 's3', 'tenant-env': JSON.stringify({ 'tenant-s3': { OPENCLAW_GATEWAY_PORT: '18799', OPENAI_API_KEY: PLAIN_SECRET } }) })
    expect(statusOf(run)).toEqual({ s3: 'rolled-back' })
    expect(envOf(server(fleet, 's3'))).toBe(before)
    expect(await healthOf('s3')).toBe('v1')
    expectNoValue(run, [PLAIN_SECRET])
  })

  it('an unknown tenant is an error before any connection', async () => {
    const run = await act({ 'tenant-env': JSON.stringify({ 'no-such-tenant': { A: 'b' } }) })
    expect(run.code).toBe(1)
    expect(run.stdout).toMatch(/no-such-tenant/)
    expect(resultsOf(run)).toEqual([])
  })
})

describe('mode: rotate-token', () => {
  it('gives each server a new token, made on the server or given in tenant-env, that never shows', async () => {
    const old = { s1: tokenOf('s1'), s2: tokenOf('s2') }
    const given = 'ab'.repeat(32)
    const run = await act({ mode: 'rotate-token', servers: 's1,s2', 'tenant-env': JSON.stringify({ 'tenant-s2': { OPENCLAW_GATEWAY_TOKEN: given } }) })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s1: 'deployed', s2: 'deployed' })
    const made = tokenOf('s1')!
    expect(made).toMatch(/^[0-9a-f]{64}$/)
    expect(made).not.toBe(old.s1)
    expect(tokenOf('s2')).toBe(given)
    expect((await composeEnv('s1')).OPENCLAW_GATEWAY_TOKEN).toBe(made)
    for (const name of ['s1', 's2']) expect(await healthOf(name)).toBe('v1')
    expectNoValue(run, [made, given, old.s1!, old.s2!])
  })

  it('puts the old token back when the gateway is not healthy with the new one', async () => {
    // s1's gateway is broken (404) before the rotation: a restart cannot make it healthy
    await sh('s1', `sed -i 's|^OPENCLAW_IMAGE=.*|OPENCLAW_IMAGE=${fleet.images.broken}|' .env && docker compose up -d --quiet-pull openclaw-gateway >/dev/null 2>&1`)
    const before = envOf(server(fleet, 's1'))
    const run = await act({ mode: 'rotate-token', servers: 's1', 'health-timeout': '5' })
    expect(['rolled-back', 'failed']).toContain(statusOf(run).s1)
    expect(envOf(server(fleet, 's1'))).toBe(before)
  })
})
