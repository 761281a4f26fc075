// Bad input loses nothing: when the registry or the inputs are wrong, or in a dry run, the action
// opens no connection at all. Every server's sshd logs each connection (even one that never logs
// in), so the count of connections in its log must not grow.
import { readFileSync, writeFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, readFleet, rig, runAction, sshdConnections, writeRegistry, type Fleet } from '../rig/fleet.js'

let fleet: Fleet
const connections = () => fleet.servers.map(s => sshdConnections(fleet, s.name))

beforeAll(async () => {
  fleet = readFleet()
  await rig('reset', 'all')
})

describe('nothing connects', () => {
  it('sshd logs a connection that never logs in (so the checks below can fail)', async () => {
    const before = connections()
    const file = writeRegistry(fleet, ['s1'], { hostKey: fleet.servers[1]!.hostKey })
    const run = await runAction({ 'servers-file': file, 'ssh-private-key': actionKeyInputs(fleet)['ssh-private-key'] })
    expect(run.code).toBe(1)
    expect(connections()[0]).toBeGreaterThan(before[0]!)
  })

  it.each([
    ['a registry with a hostile path in one entry', { perServer: (_s: unknown, i: number) => (i === 2 ? { path: '/srv/$(reboot)' } : {}) }, {}, /servers\[2\]\.path/],
    [
      'a registry with a misspelt field',
      { perServer: (_s: unknown, i: number) => (i === 4 ? { healtUrl: 'http://127.0.0.1:18789/health' } : {}) },
      {},
      /servers\[4\]\.healtUrl .*Did you mean "healthUrl"/
    ],
    ['an unknown tenant in the filter', {}, { tenants: 'tenant-s1,tenant-nope' }, /Input "tenants" names "tenant-nope"/],
    ['an invalid input', {}, { 'max-parallel': 'lots' }, /Input "max-parallel" is "lots"/]
  ])('with %s', async (_label, extra, inputs, message) => {
    const before = connections()
    const file = writeRegistry(
      fleet,
      fleet.servers.map(s => s.name),
      extra
    )
    const run = await runAction({ 'servers-file': file, ...actionKeyInputs(fleet), image: fleet.images.v2, ...inputs })
    expect(run.code).toBe(1)
    expect(run.stdout).toMatch(message)
    expect(run.outputs.results).toBeUndefined()
    expect(connections()).toEqual(before)
  })

  it('with invalid JSON, naming line and column', async () => {
    const before = connections()
    const file = writeRegistry(fleet, ['s1'])
    writeFileSync(file, readFileSync(file, 'utf8').replace('"tenant"', '"tenant" "x",'))
    const run = await runAction({ 'servers-file': file, ...actionKeyInputs(fleet), image: fleet.images.v2 })
    expect(run.code).toBe(1)
    expect(run.stdout).toMatch(/servers\.json:\d+:\d+: invalid JSON/)
    expect(connections()).toEqual(before)
  })

  it('in a dry run, which prints the plan with canaries first', async () => {
    const before = connections()
    const file = writeRegistry(fleet, ['s1', 's2', 's3'])
    const run = await runAction({ 'servers-file': file, image: fleet.images.v2, 'dry-run': 'true', canary: '1' })
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/Plan: deploy on 3 servers \(1 canary first; the other 2 start only if every canary succeeds/)
    expect(run.stdout).toMatch(/^1\s+s1\s.*canary$/m)
    expect(JSON.parse(run.outputs.results!).map((r: { status: string }) => r.status)).toEqual(['planned', 'planned', 'planned'])
    expect(run.summary).toMatch(/\| tenant-s2 \| s2 \| {2}\| 📝 planned \|/)
    expect(connections()).toEqual(before)
  })
})
