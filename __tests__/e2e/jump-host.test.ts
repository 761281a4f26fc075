// Servers that only a bastion reaches (rig.sh bastion): s7 and s8 move to a bridge of their own,
// which this machine has no address on; the bastion is a namespace with its own sshd on both
// bridges. The action connects to the bastion once and opens each server's connection through it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, healthOf, readFleet, resultsOf, rig, runAction, server, serverExec, statusOf, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'

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

/** Connections a server's sshd has logged so far. */
const connectionsTo = (name: string) => (readFileSync(join(fleet.rigDir, name, 'sshd.log'), 'utf8').match(/Connection from /g) ?? []).length

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
      const s = server(fleet, name)
      const left = await serverExec(name, `ls -d /tmp/openclaw-docker-config.* ${s.home}/.docker/config.json 2>/dev/null; grep -rlF -e '${password}' ${s.home} ${s.path} 2>/dev/null; true`)
      expect(left.stdout.trim()).toBe('')
    }
    expect([run.stdout.replace(/^::add-mask::.*$/gm, ''), run.summary, JSON.stringify(run.outputs)].join('\n')).not.toContain(password)
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

  it('the bastion cut off mid-deploy is handled like a cut server: the servers behind it are unreachable, naming the hop', async () => {
    const run = await act(
      registryVia({ host: bastion.host, hostKey: bastion.hostKey }),
      { image: fleet.images.v1, 'connect-timeout': '5' },
      {
        onSpawn: child => {
          let seen = ''
          let cut = false
          child.stdout?.on('data', (d: Buffer) => {
            seen += d.toString()
            if (!cut && /\[s\d\] health check/.test(seen)) {
              cut = true
              void rig('bastion', 'cut')
            }
          })
        }
      }
    )
    await rig('bastion', 'mend')
    const statuses = Object.values(statusOf(run))
    expect(statuses.every(s => ['unreachable', 'rolled-back', 'deployed'].includes(s))).toBe(true)
    expect(statuses).toContain('unreachable')
    const lost = resultsOf(run).filter(r => r.status === 'unreachable')
    for (const r of lost) expect(r.error).toMatch(/jump host|through jump host/)
  })
})
