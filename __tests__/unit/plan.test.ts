import { describe, expect, it } from '@jest/globals'
import { UserError } from '../../src/errors.js'
import { buildPlan, checkTenantEnv, DISABLED_REASON, envValuesFor, formatPlan, REPULL_CURRENT_IMAGE, ROLLBACK_IMAGE, RUNNING_IMAGE, UNCHANGED_IMAGE } from '../../src/plan.js'
import { NEW_TOKEN } from '../../src/remote/commands.js'
import { selectServers } from '../../src/registry/select.js'
import type { Mode } from '../../src/settings.js'
import { fleet, makeServer, NO_FILTERS } from './fixtures/servers.js'

const IMAGE = 'registry.local:5000/openclaw:1.4.2'
const settingsFor = (mode: Mode, canary: number, image = IMAGE) => ({ mode, image, canary, dryRun: true, maxParallel: 4 })

describe('buildPlan', () => {
  it('puts the first `canary` selected servers first, then the rest, then the skipped ones', () => {
    const plan = buildPlan(selectServers(fleet(), NO_FILTERS), settingsFor('deploy', 2))
    expect(plan.canaries).toBe(2)
    expect(plan.entries.map(e => [e.order, e.server.name, e.action, e.canary])).toEqual([
      [1, 'acme-eu-1', 'deploy', true],
      [2, 'acme-us-1', 'deploy', true],
      [3, 'globex-eu-1', 'deploy', false],
      [4, 'initech-us-1', 'deploy', false],
      [5, 'initech-lab', 'deploy', false],
      [6, 'globex-eu-2', 'skip', false]
    ])
    expect(plan.entries[5]).toMatchObject({ skipReason: DISABLED_REASON, image: UNCHANGED_IMAGE })
    expect(plan.entries.slice(0, 5).every(e => e.image === IMAGE && e.skipReason === undefined)).toBe(true)
  })

  it('takes canaries from the filtered selection', () => {
    const plan = buildPlan(selectServers(fleet(), { ...NO_FILTERS, tenants: ['initech', 'globex'] }), settingsFor('deploy', 1))
    expect(plan.entries.filter(e => e.canary).map(e => e.server.name)).toEqual(['globex-eu-1'])
  })

  it('caps canaries at the number of selected servers', () => {
    const plan = buildPlan(selectServers(fleet(), { ...NO_FILTERS, tenants: ['acme'] }), settingsFor('deploy', 5))
    expect(plan.canaries).toBe(2)
    expect(plan.entries.every(e => e.canary)).toBe(true)
  })

  it('says the current image is re-pulled when no image is given', () => {
    const plan = buildPlan(selectServers(fleet(), NO_FILTERS), settingsFor('deploy', 0, ''))
    expect(plan.entries[0].image).toBe(REPULL_CURRENT_IMAGE)
    expect(plan.canaries).toBe(0)
  })

  it('rollback restores the recorded image; status changes nothing and has no canaries', () => {
    const selection = selectServers(fleet(), NO_FILTERS)
    const rollback = buildPlan(selection, settingsFor('rollback', 1, ''))
    expect(rollback.entries[0]).toMatchObject({ action: 'rollback', image: ROLLBACK_IMAGE, canary: true })
    const status = buildPlan(selection, settingsFor('status', 3, ''))
    expect(status.canaries).toBe(0)
    expect(status.entries[0]).toMatchObject({ action: 'status', image: UNCHANGED_IMAGE, canary: false })
  })
})

describe('formatPlan', () => {
  it('prints one aligned line per server, canaries first, skipped last', () => {
    const settings = settingsFor('deploy', 1)
    const text = formatPlan(buildPlan(selectServers(fleet(), NO_FILTERS), settings), settings)
    expect(text.split('\n')).toEqual([
      'Plan: deploy on 5 servers, 1 skipped (1 canary first; the other 4 start only if every canary succeeds; at most 4 at a time). Dry run: no server is contacted.',
      '#  server        tenant   region   ssh                                  path                       action / image                                     phase',
      '1  acme-eu-1     acme     eu-west  deploy@acme-eu-1.example.com:22      /home/deploy/openclaw-prd  deploy registry.local:5000/openclaw:1.4.2          canary',
      '2  acme-us-1     acme     us-east  deploy@acme-us-1.example.com:22      /home/deploy/openclaw-prd  deploy registry.local:5000/openclaw:1.4.2          after canaries',
      '3  globex-eu-1   globex   eu-west  deploy@globex-eu-1.example.com:2222  /home/deploy/openclaw-prd  deploy registry.local:5000/openclaw:1.4.2          after canaries',
      '4  initech-us-1  initech  us-east  deploy@[2001:db8::21]:22             /home/deploy/openclaw-prd  deploy registry.local:5000/openclaw:1.4.2          after canaries',
      '5  initech-lab   initech  -        openclaw@initech-lab.example.com:22  /srv/openclaw-lab          deploy registry.local:5000/openclaw:1.4.2          after canaries',
      '6  globex-eu-2   globex   eu-west  deploy@globex-eu-2.example.com:22    /home/deploy/openclaw-prd  skip: disabled in the registry ("enabled": false)'
    ])
  })

  it('without canaries and outside a dry run says so', () => {
    const settings = { ...settingsFor('deploy', 0, ''), dryRun: false }
    const text = formatPlan(buildPlan(selectServers(fleet(), { ...NO_FILTERS, servers: ['acme-eu-1'] }), settings), settings)
    expect(text).toBe(
      [
        'Plan: deploy on 1 server (no canary phase; at most 4 at a time).',
        '#  server     tenant  region   ssh                              path                       action / image',
        '1  acme-eu-1  acme    eu-west  deploy@acme-eu-1.example.com:22  /home/deploy/openclaw-prd  deploy (current image from .env, re-pulled)'
      ].join('\n')
    )
  })
})

describe('tenant-env in the plan', () => {
  const problemsOf = (tenantEnv: Record<string, Record<string, string>>, registry = fleet()): string[] => {
    try {
      checkTenantEnv(registry, tenantEnv)
      return []
    } catch (error) {
      if (error instanceof UserError) return error.problems
      throw error
    }
  }

  it('names an unknown tenant before any connection, with the known ones', () => {
    expect(problemsOf({ '*': { A: '1' }, acme: { B: '2' } })).toEqual([])
    expect(problemsOf({ acmee: { B: '2' }, zzz: {} })).toEqual([
      'Input "tenant-env" names the tenant "acmee", but no server in .github/servers/production.json has that tenant. Did you mean "acme"? Known tenants: acme, globex, initech.',
      'Input "tenant-env" names the tenant "zzz", but no server in .github/servers/production.json has that tenant. Known tenants: acme, globex, initech.'
    ])
  })

  it("refuses each server's own image variable, for one tenant or for all", () => {
    const registry = fleet()
    registry.servers.push(makeServer('hooli-1', 'hooli', undefined, { imageVariable: 'GATEWAY_IMAGE' }))
    expect(problemsOf({ hooli: { OPENCLAW_IMAGE: 'x' } }, registry)).toEqual([])
    expect(problemsOf({ '*': { GATEWAY_IMAGE: 'x' }, acme: { OPENCLAW_IMAGE: 'y' } }, registry)).toEqual([
      'Input "tenant-env": acme.OPENCLAW_IMAGE sets the image variable of server acme-eu-1; the image is set with the input "image" (and restored by a rollback). Remove OPENCLAW_IMAGE from tenant-env.',
      'Input "tenant-env": *.GATEWAY_IMAGE sets the image variable of server hooli-1; the image is set with the input "image" (and restored by a rollback). Remove GATEWAY_IMAGE from tenant-env.'
    ])
  })

  it("gives each server its tenant's values, the token in rotate-token, and shows the names in the plan", () => {
    const tenantEnv = { '*': { A: '1' }, acme: { OPENCLAW_GATEWAY_TOKEN: 't'.repeat(64) } }
    const [acme, globex] = [fleet().servers[0]!, fleet().servers[2]!]
    expect(envValuesFor(globex, { mode: 'rotate-token', tenantEnv })).toEqual({ A: '1', OPENCLAW_GATEWAY_TOKEN: NEW_TOKEN })
    expect(envValuesFor(acme, { mode: 'rotate-token', tenantEnv })).toEqual({ A: '1', OPENCLAW_GATEWAY_TOKEN: 't'.repeat(64) })
    expect(envValuesFor(globex, { mode: 'deploy', tenantEnv })).toEqual({ A: '1' })
    const settings = { ...settingsFor('rotate-token', 0, ''), tenantEnv }
    const plan = buildPlan(selectServers(fleet(), { ...NO_FILTERS, tenants: ['globex'] }), settings)
    expect(plan.entries[0]).toMatchObject({ image: RUNNING_IMAGE, variables: ['A', 'OPENCLAW_GATEWAY_TOKEN'] })
    expect(formatPlan(plan, settings)).toContain('rotate-token (the image that runs, restarted); sets A, OPENCLAW_GATEWAY_TOKEN in .env')
    expect(buildPlan(selectServers(fleet(), NO_FILTERS), settingsFor('status', 0, '')).entries[0]!.variables).toEqual([])
  })
})

describe('formatPlan with jump hosts', () => {
  it('shows the route to a server behind a jump host', () => {
    const direct = makeServer('acme-1', 'acme', undefined, { host: '203.0.113.10' })
    const behind = makeServer('acme-2', 'acme', undefined, { host: '10.0.0.5', jump: { host: 'bastion.example', port: 22, user: 'ops', hostKeys: [] } })
    const text = formatPlan(buildPlan({ selected: [direct, behind], disabled: [] }, settingsFor('deploy', 0)), { dryRun: true, maxParallel: 4 })
    const lines = text.split('\n')
    expect(lines.find(l => l.includes('acme-1'))).toMatch(/ deploy@203\.0\.113\.10:22 /)
    expect(lines.find(l => l.includes('acme-2'))).toMatch(/ deploy@10\.0\.0\.5:22 via ops@bastion\.example:22 /)
  })
})
