// Servers that only a bastion reaches (rig.sh bastion): s7 and s8 move to a bridge of their own,
// which this machine has no address on; the bastion is a namespace with its own sshd on both
// bridges. The action connects to the bastion once and opens each server's connection through it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, healthOf, readFleet, resultsOf, rig, runAction, server, serverExec, sshdConnections, statusOf, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'
import { credentialsLeft, expectNoPassword } from './registry-credentials.js'

interface Bastion {
  host: string
  port: number
  user: string
  hostKey: string
  knownHostsFile: string
}
const HIDDEN = ['s7', 's8']
let fleet: Fleet
let bastion: Bastion

function registryVia(jump: Record<string, unknown> | undefined): string {
  return writeRegistry(fleet, HIDDEN, { top: { defaults: jump ? { jump } : {} } })
}

function act(file: string, inputs: Record<string, string>, opts: Parameters<typeof runAction>[1] = {}, bastionInKnownHosts = true): Promise<ActionRun> {
  const keys = actionKeyInputs(fleet)
  // known-hosts lists the servers and the bastion, as an operator's secret would
  const knownHosts = keys['known-hosts'] + (bastionInKnownHosts ? readFileSync(bastion.knownHostsFile, 'utf8') : '')
  return runAction({ 'servers-file': file, ...keys, 'known-hosts': knownHosts, 'health-timeout': '8', ...inputs }, opts)
}

const connectionsTo = (name: string) => sshdConnections(fleet, name)

beforeAll(async () => {
  fleet = readFleet()
  await Promise.all(HIDDEN.map(name => rig('reset', name)))
  await rig('bastion', 'up', ...HIDDEN)
  bastion = JSON.parse(readFileSync(join(fleet.rigDir, 'bastion', 'bastion.json'), 'utf8')) as Bastion
})

afterAll(async () => {
  await rig('bastion', 'down')
  await Promise.all(HIDDEN.map(name => rig('reset', name)))
})

describe('servers behind a bastion', () => {
  it("are out of this machine's reach", async () => {
    const run = await act(registryVia(undefined), { image: fleet.images.v2, 'connect-timeout': '3' })
    expect(statusOf(run)).toEqual({ s7: 'unreachable', s8: 'unreachable' })
  })

  it('deploy through it, with the route in the plan and the results', async () => {
    const run = await act(registryVia({ host: bastion.host, user: bastion.user }), { image: fleet.images.v2 })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s7: 'deployed', s8: 'deployed' })
    expect(run.stdout).toContain(`via deploy@${bastion.host}:22`)
    expect(resultsOf(run).map(r => r.jump)).toEqual([`${bastion.host}:22`, `${bastion.host}:22`])
    for (const name of HIDDEN) expect(await healthOf(name)).toBe('v2')
  })

  it('a private image deploys to them, with no credential left anywhere', async () => {
    const password = readFileSync(fleet.privateRegistry.passwordFile, 'utf8')
    const run = await act(registryVia({ host: bastion.host, hostKey: bastion.hostKey }), {
      image: fleet.privateRegistry.image,
      'registry-username': fleet.privateRegistry.username,
      'registry-password': password
    })
    expect(statusOf(run)).toEqual({ s7: 'deployed', s8: 'deployed' })
    for (const name of HIDDEN) {
      expect(await healthOf(name)).toBe('private')
      expect(await credentialsLeft(fleet, name, fleet.privateRegistry.username, password)).toBe('')
    }
    expectNoPassword(run, fleet.privateRegistry.username, password)
  })

  it('a bastion whose host key is wrong is refused before any server behind it is touched', async () => {
    const before = HIDDEN.map(connectionsTo)
    const wrong = server(fleet, 's1').hostKey
    // (known-hosts without the bastion's line: the registry's hostKey is all that vouches for it)
    const run = await act(registryVia({ host: bastion.host, hostKey: wrong }), { image: fleet.images.v1 }, {}, false)
    expect(statusOf(run)).toEqual({ s7: 'failed', s8: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(new RegExp(`jump host .*${bastion.host.replace(/\./g, '\\.')}:22`))
    expect(HIDDEN.map(connectionsTo)).toEqual(before)
  })

  it('an unreachable bastion makes the servers behind it unreachable, naming the hop, and touches none of them', async () => {
    const before = HIDDEN.map(connectionsTo)
    await rig('bastion', 'cut')
    try {
      const run = await act(registryVia({ host: bastion.host, hostKey: bastion.hostKey }), { image: fleet.images.v1, 'connect-timeout': '3' })
      expect(statusOf(run)).toEqual({ s7: 'unreachable', s8: 'unreachable' })
      for (const r of resultsOf(run)) expect(r.error).toMatch(new RegExp(`jump host .*${bastion.host.replace(/\./g, '\\.')}:22`))
      expect(run.durationMs).toBeLessThan(60_000)
    } finally {
      await rig('bastion', 'mend')
    }
    expect(HIDDEN.map(connectionsTo)).toEqual(before)
  })

  it('the bastion cut off mid-deploy is handled like a cut server: reconnected through it once it is back, no lock left, healthy', async () => {
    const from = await healthOf('s7')
    const target = from === 'v1' ? 'v2' : 'v1'
    let cut: Promise<unknown> | undefined
    let mended: Promise<unknown> | undefined
    const run = await act(
      registryVia({ host: bastion.host, hostKey: bastion.hostKey }),
      { image: fleet.images[target], 'connect-timeout': '40', 'health-timeout': '30' },
      {
        onSpawn: child => {
          let seen = ''
          child.stdout?.on('data', (d: Buffer) => {
            seen += d.toString()
            if (!cut && /\[s\d\] health check/.test(seen)) cut = rig('bastion', 'cut')
            // the link comes back once a server has found it dead (keepalives: 15-20 s) and reconnects,
            // whether in its health check or in its last channel (the other server may be there already)
            if (cut && !mended && /\[s\d\] reconnecting/.test(seen)) mended = cut.then(() => rig('bastion', 'mend'))
          })
        }
      }
    )
    await cut
    // (mended here when the run ended before a server noticed the cut: nothing was left to lose)
    await (mended ?? rig('bastion', 'mend'))
    expect(run.timedOut).toBe(false)
    // Keepalives notice the dead hop; the action reconnects through the bastion and settles each server.
    for (const r of resultsOf(run)) {
      expect(['rolled-back', 'deployed']).toContain(r.status)
      if (r.status === 'rolled-back') expect(r.error).toMatch(/reconnected and restored/)
    }
    for (const name of HIDDEN) {
      expect([from, target]).toContain(await healthOf(name))
      expect((await serverExec(name, `test -e ${server(fleet, name).path}/.openclaw-deploy/lock && echo locked || true`)).stdout.trim()).toBe('')
    }
    // and the next run goes through it as before
    const status = await act(registryVia({ host: bastion.host, hostKey: bastion.hostKey }), { mode: 'status' })
    expect(statusOf(status)).toEqual({ s7: 'healthy', s8: 'healthy' })
  })
})
