// Round trips, counted where they happen: every exec channel the action opens, its server's sshd
// logs at LogLevel VERBOSE ("Starting session: command for deploy from … id N"), and every login
// ("Accepted publickey for deploy"; not "Connection from", which the rig's own port probes log too).
// A count is exact, not a timing. A deploy takes 5 channels on one connection (lock+preflight, pull,
// record+write-env+up, health, prune+history+unlock), one rolled back 7, and a status 1.
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, healthOf, readFleet, rig, runAction, statusOf, writeRegistry, type Fleet } from '../rig/fleet.js'

const SERVERS = ['s5', 's6']
let fleet: Fleet

const logOf = (name: string) => join(fleet.rigDir, name, 'sshd.log')

/** What each server's sshd logs while `work` runs: its connections and exec channels. */
async function counted(work: () => Promise<unknown>): Promise<Record<string, { connections: number; channels: number }>> {
  const before = Object.fromEntries(SERVERS.map(name => [name, statSync(logOf(name)).size]))
  await work()
  return Object.fromEntries(
    SERVERS.map(name => {
      const added = readFileSync(logOf(name)).subarray(before[name]).toString('utf8')
      return [name, { connections: (added.match(/Accepted publickey for /g) ?? []).length, channels: (added.match(/Starting session: command for /g) ?? []).length }]
    })
  )
}

function act(inputs: Record<string, string>, servers = SERVERS) {
  return runAction({ 'servers-file': writeRegistry(fleet, servers), ...actionKeyInputs(fleet), 'health-timeout': '8', ...inputs })
}

beforeAll(async () => {
  fleet = readFleet()
  await Promise.all(SERVERS.map(name => rig('reset', name)))
})

afterAll(async () => {
  await Promise.all(SERVERS.map(name => rig('reset', name)))
})

describe('round trips per server', () => {
  it('sshd logs one session line per exec channel (so the counts below can fail)', async () => {
    const seen = await counted(() => act({ mode: 'status' }, ['s5']))
    expect(seen.s5).toEqual({ connections: 1, channels: 1 })
    expect(seen.s6).toEqual({ connections: 0, channels: 0 })
  })

  it('a deploy takes 5 channels, one rolled back 7, on one connection each', async () => {
    let statuses: Record<string, string> = {}
    const deployed = await counted(async () => (statuses = statusOf(await act({ image: fleet.images.v2 }, ['s5']))))
    expect(statuses).toEqual({ s5: 'deployed' })
    expect(deployed.s5).toEqual({ connections: 1, channels: 5 })

    const rolledBack = await counted(async () => (statuses = statusOf(await act({ image: fleet.images.broken }, ['s6']))))
    expect(statuses).toEqual({ s6: 'rolled-back' })
    expect(rolledBack.s6).toEqual({ connections: 1, channels: 7 })
    expect(await healthOf('s5')).toBe('v2')
    expect(await healthOf('s6')).toBe('v1')
  })

  it('a redeploy of the image that runs takes 3 and restarts nothing', async () => {
    let statuses: Record<string, string> = {}
    const again = await counted(async () => (statuses = statusOf(await act({ image: fleet.images.v2 }, ['s5']))))
    expect(statuses).toEqual({ s5: 'unchanged' })
    // lock+preflight, pull, then history+unlock
    expect(again.s5).toEqual({ connections: 1, channels: 3 })
  })

  it('status takes 1 channel per server', async () => {
    let statuses: Record<string, string> = {}
    const seen = await counted(async () => (statuses = statusOf(await act({ mode: 'status' }))))
    expect(statuses).toEqual({ s5: 'healthy', s6: 'healthy' })
    expect(seen).toEqual({ s5: { connections: 1, channels: 1 }, s6: { connections: 1, channels: 1 } })
  })
})
