// What the operator sees, on the rig: a fleet deploy where one tenant cannot become healthy, then
// `mode: rollback` and `mode: status` for another tenant. Checks the job summary, the outputs, the
// annotations, the GitHub deployments (against a local stand-in for the API) and that no secret
// reaches any output.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { FAKE_GITHUB_TOKEN, actionKeyInputs, healthOf, readFleet, rig, runAction, scratchDir, server, serverExec, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'

const TENANT: Record<string, string> = { s1: 'acme', s2: 'acme', s3: 'globex', s4: 'globex', s5: 'initech' }
const SERVERS = Object.keys(TENANT)
const PASSPHRASE = 'correct horse battery staple'

let fleet: Fleet
let registryFile: string
let keyWithPassphrase: string
let api: HttpServer
const apiRequests: Array<{ method: string; url: string; body: Record<string, unknown> }> = []
const runs: ActionRun[] = []

/** The rig's key, re-encrypted with a passphrase: the same key, so the servers accept it. */
function encryptedKey(): string {
  const file = join(scratchDir('key'), 'id')
  copyFileSync(fleet.privateKeyFile, file)
  const r = spawnSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', PASSPHRASE, '-f', file], { encoding: 'utf8' })
  expect(r.status).toBe(0)
  return readFileSync(file, 'utf8')
}

async function act(inputs: Record<string, string>): Promise<ActionRun> {
  const run = await runAction(
    { 'servers-file': registryFile, 'ssh-private-key': keyWithPassphrase, 'ssh-passphrase': PASSPHRASE, 'known-hosts': actionKeyInputs(fleet)['known-hosts'], ...inputs },
    { env: { GITHUB_API_URL: `http://127.0.0.1:${(api.address() as AddressInfo).port}` } }
  )
  runs.push(run)
  return run
}

const results = (run: ActionRun) => JSON.parse(run.outputs.results!) as Array<Record<string, string | number | null>>
const statusOf = (run: ActionRun) => Object.fromEntries(results(run).map(r => [r.name, r.status]))
/** Summary table rows as [tenant, server, status]. */
const rows = (run: ActionRun) =>
  run.summary
    .split('\n')
    .filter(l => /^\| (acme|globex|initech) \|/.test(l))
    .map(l => l.split(' | ').map(c => c.replace(/^\| /, '')))
    .map(c => [c[0], c[1], c[3]!.replace(/^\S+ /, '')])

beforeAll(async () => {
  fleet = readFleet()
  await rig('reset', 'all')
  keyWithPassphrase = encryptedKey()
  // globex's gateway needs a tenant configuration folder per release, and there is none for v2 (as
  // when a new version needs config a tenant does not have yet): its containers cannot start on v2.
  for (const name of ['s3', 's4']) {
    const s = server(fleet, name)
    const compose = join(s.path, 'docker-compose.yml')
    // (the gateway's first volume line: upstream's compose file lists the gateway first)
    const mount = '      - type: bind\n        source: ./tenant-config/$${OPENCLAW_IMAGE}\n        target: /etc/openclaw-tenant\n        read_only: true\n'
    writeFileSync(compose, readFileSync(compose, 'utf8').replace(/^( {6}- \$\{OPENCLAW_WORKSPACE_DIR\}:.*\n)/m, `$1${mount}`))
    mkdirSync(join(s.path, 'tenant-config', fleet.images.v1), { recursive: true })
    const up = await serverExec(name, 'docker compose up -d 2>&1')
    expect(up.stdout + up.stderr).not.toMatch(/error/i)
  }
  registryFile = writeRegistry(fleet, SERVERS, s => ({ tenant: TENANT[s.name], region: 'rig' }))
  api = createServer((req, res) => {
    let data = ''
    req.on('data', c => (data += c))
    req.on('end', () => {
      apiRequests.push({ method: req.method!, url: req.url!, body: data ? (JSON.parse(data) as Record<string, unknown>) : {} })
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: apiRequests.length }))
    })
  })
  await new Promise<void>(r => api.listen(0, '127.0.0.1', r))
})

afterAll(async () => {
  await new Promise<void>(r => api.close(() => r()))
  await rig('reset', 'all')
})

describe('what the operator sees', () => {
  it('a deploy with one unhealthy tenant: summary rows, JSON outputs, annotations for that tenant only, GitHub deployments', async () => {
    const run = await act({ image: fleet.images.v2, environment: 'production', 'health-timeout': '5' })
    expect(run.code).toBe(1)
    expect(statusOf(run)).toEqual({ s1: 'deployed', s2: 'deployed', s3: 'rolled-back', s4: 'rolled-back', s5: 'deployed' })
    expect(run.outputs).toMatchObject({ deployed: '3', 'rolled-back': '2', failed: '0', skipped: '0' })
    expect(results(run)[2]).toMatchObject({ name: 's3', tenant: 'globex', host: '10.200.0.13', previousImage: fleet.images.v1, deployedImage: fleet.images.v1 })

    expect(run.summary).toContain(`## OpenClaw deploy of \`${fleet.images.v2}\` at commit \`0123456789ab\``)
    expect(run.summary).toContain('5 servers: ✅ 3 deployed · ↩️ 2 rolled-back')
    expect(rows(run)).toEqual([
      ['acme', 's1', 'deployed'],
      ['acme', 's2', 'deployed'],
      ['globex', 's3', 'rolled-back'],
      ['globex', 's4', 'rolled-back'],
      ['initech', 's5', 'deployed']
    ])
    expect(run.summary).toMatch(/<details><summary>↩️ s3 \(globex\): rolled-back at up<\/summary>/)

    const annotations = run.stdout.split('\n').filter(l => l.startsWith('::error'))
    expect(annotations.filter(l => l.startsWith('::error title='))).toEqual([
      // Compose's own last line says why (no value of .env in it: see security.test.ts)
      expect.stringMatching(
        /^::error title=s3 \(globex\)%3A rolled-back::up failed: docker compose up failed: Error response from daemon: .*bind source path does not exist.*; restored .*:v1, which is healthy/
      ),
      expect.stringMatching(/^::error title=s4 \(globex\)%3A rolled-back::/)
    ])
    expect(annotations.at(-1)).toBe('::error::2 of 5 servers did not succeed: s3 rolled-back, s4 rolled-back')
    // Each server's log is one group, printed when it finished.
    expect(run.stdout).toMatch(/::group::✅ s1 \(acme\): deployed in [\d.]+s\n(?:(?!::group::)[^\n]*\n)*::endgroup::/)

    const states = apiRequests.filter(r => r.url.includes('/statuses')).map(r => `${r.url.split('/')[5]} ${String(r.body.state)}`)
    const created = apiRequests.filter(r => r.url.endsWith('/deployments')).map(r => r.body.environment)
    expect(created).toEqual(['production/acme', 'production/globex', 'production/initech'])
    expect(states).toEqual(['1 in_progress', '3 in_progress', '5 in_progress', '1 success', '3 failure', '5 success'])
  })

  it('mode: rollback brings a tenant back to its previous image, and mode: status shows it', async () => {
    const rollback = await act({ mode: 'rollback', tenants: 'acme' })
    expect(rollback.code).toBe(0)
    expect(statusOf(rollback)).toEqual({ s1: 'deployed', s2: 'deployed' })
    expect(results(rollback)[0]).toMatchObject({ previousImage: fleet.images.v2, deployedImage: fleet.images.v1 })
    expect(await healthOf('s1')).toBe('v1')
    expect(await healthOf('s5')).toBe('v2')

    const status = await act({ mode: 'status', tenants: 'acme,initech' })
    expect(status.code).toBe(0)
    expect(statusOf(status)).toEqual({ s1: 'healthy', s2: 'healthy', s5: 'healthy' })
    expect(results(status).map(r => r.deployedImage)).toEqual([fleet.images.v1, fleet.images.v1, fleet.images.v2])
    expect(rows(status)).toEqual([
      ['acme', 's1', 'healthy'],
      ['acme', 's2', 'healthy'],
      ['initech', 's5', 'healthy']
    ])
    expect(status.summary).toContain(`| acme | s1 | rig | 💚 healthy | ${fleet.images.v1} \``)
    // the last deploy in a column of its own: when, what, by whom
    expect(status.summary).toMatch(/\| acme \| s1 \|.*\| [\d-]+ [\d:]+ UTC: deployed \S+:v2 → \S+:v1 by /)
  })

  it('no secret appears in any output', () => {
    const secrets = [PASSPHRASE, FAKE_GITHUB_TOKEN, ...keyWithPassphrase.split('\n').filter(l => l.length > 20 && !l.startsWith('-----'))]
    for (const run of runs) {
      // `::add-mask::` lines are how secrets are handed to the runner, which never shows them.
      const shown = [run.stdout.replace(/^::add-mask::.*$/gm, ''), run.stderr, run.summary, JSON.stringify(run.outputs)].join('\n')
      for (const secret of secrets) expect(shown.includes(secret) ? secret : 'absent').toBe('absent')
    }
    expect(runs.length).toBe(3)
  })
})
