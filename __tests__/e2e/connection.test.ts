// The SSH connection against the real fleet: which host key a server shows and whether it is
// trusted (s1 and s2 hold ed25519, ECDSA and RSA host keys, the others ed25519 only), and that a
// connection, and the action's process, end promptly when a server stops answering.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { parseKnownHosts } from '../../src/remote/host-keys.js'
import { connect } from '../../src/remote/ssh.js'
import { actionKeyInputs, baselineEnvOf, envOf, knownHostsLines, readFleet, rig, runAction, server, writeRegistry, type ActionRun, type Fleet, type FleetServer } from '../rig/fleet.js'

interface Result {
  name: string
  status: string
  error: string | null
}

const fleet: Fleet = readFleet()
const results = (run: ActionRun): Result[] => JSON.parse(run.outputs.results ?? '[]') as Result[]
const ECDSA = 'ecdsa-sha2-nistp256'
const RSA = 'ssh-rsa'

beforeAll(async () => {
  await rig('reset', 'all')
})

/** `mode: status` on one server with only the given host key listing (none by default). */
function statusOf(name: string, listing: { knownHosts?: string; hostKey?: string; strict?: boolean }): Promise<ActionRun> {
  const file = writeRegistry(fleet, [name], { hostKey: listing.hostKey })
  return runAction({
    'servers-file': file,
    mode: 'status',
    'ssh-private-key': actionKeyInputs(fleet)['ssh-private-key'],
    'known-hosts': listing.knownHosts ?? '',
    'strict-host-key-checking': String(listing.strict ?? true)
  })
}

/** A known_hosts line that names the server but carries another server's key of the same type. */
function wrongLine(target: FleetServer, keyOf: FleetServer, keyType: string): string {
  return knownHostsLines(fleet, keyOf, keyType).replace(keyOf.host, target.host)
}

describe('host keys of other types than ed25519', () => {
  const s1 = server(fleet, 's1')
  const s2 = server(fleet, 's2')

  it('the rig lists every host key of s1 and s2 in known_hosts and fleet.json', () => {
    for (const s of [s1, s2]) {
      expect(Object.keys(s.hostKeys).sort()).toEqual([ECDSA, 'ssh-ed25519', RSA])
      expect(s.hostKeys['ssh-ed25519']).toBe(s.hostKey)
      expect(knownHostsLines(fleet, s).trim().split('\n')).toHaveLength(3)
    }
    expect(Object.keys(server(fleet, 's3').hostKeys)).toEqual(['ssh-ed25519'])
  })

  it.each([
    ['ECDSA', ECDSA],
    ['RSA', RSA]
  ])('connects when known-hosts lists only the server’s %s key', async (_label, keyType) => {
    const run = await statusOf('s1', { knownHosts: knownHostsLines(fleet, s1, keyType) })
    expect(results(run)).toEqual([expect.objectContaining({ name: 's1', status: 'healthy', error: null })])
    expect(run.code).toBe(0)
  })

  it.each([
    ['ECDSA', ECDSA],
    ['RSA', RSA]
  ])('connects when the registry hostKey is only the fingerprint of the server’s %s key', async (_label, keyType) => {
    const run = await statusOf('s2', { hostKey: s2.hostKeys[keyType] })
    expect(results(run)).toEqual([expect.objectContaining({ name: 's2', status: 'healthy', error: null })])
  })

  it('refuses the server before any command runs when its listed ECDSA key is wrong', async () => {
    const file = writeRegistry(fleet, ['s1'], { hostKey: undefined })
    const run = await runAction({
      'servers-file': file,
      image: fleet.images.v2,
      'ssh-private-key': actionKeyInputs(fleet)['ssh-private-key'],
      'known-hosts': wrongLine(s1, s2, ECDSA)
    })
    expect(run.code).toBe(1)
    const [result] = results(run)
    expect(result).toMatchObject({ name: 's1', status: 'failed' })
    expect(result!.error).toContain(`refused before any command ran: HOST KEY MISMATCH: ${s1.host} presented the ${ECDSA} key ${s1.hostKeys[ECDSA]}`)
    // no lock was taken and nothing changed: no command ran
    expect(existsSync(join(s1.path, '.openclaw-deploy'))).toBe(false)
    expect(envOf(s1)).toBe(baselineEnvOf(s1))
  })

  it('refuses a server that has no key of the listed type, without retrying', async () => {
    const s3 = server(fleet, 's3')
    const run = await statusOf('s3', { knownHosts: wrongLine(s3, s1, RSA) })
    expect(results(run)[0]!.error).toMatch(new RegExp(`refused before any command ran: ${s3.host}:22 has no host key of a type listed for it \\(ssh-rsa\\)`))
    expect(run.durationMs).toBeLessThan(15_000)
  })
})

describe('strict-host-key-checking off', () => {
  const s3 = server(fleet, 's3')
  const s4 = server(fleet, 's4')

  it('still refuses a listed server that presents another key', async () => {
    for (const listing of [{ hostKey: s4.hostKey }, { knownHosts: wrongLine(s3, s4, 'ssh-ed25519') }]) {
      const run = await statusOf('s3', { ...listing, strict: false })
      expect(run.code).toBe(1)
      expect(results(run)[0]).toMatchObject({ name: 's3', status: 'failed' })
      expect(results(run)[0]!.error).toContain(`refused before any command ran: HOST KEY MISMATCH: ${s3.host} presented the ssh-ed25519 key ${s3.hostKey}`)
    }
  })

  it('lets an unlisted server through with a warning that shows its fingerprint', async () => {
    const run = await statusOf('s3', { strict: false })
    expect(results(run)).toEqual([expect.objectContaining({ name: 's3', status: 'healthy' })])
    expect(run.stdout).toContain(`::warning::strict-host-key-checking is off: accepted ${s3.host}:22 unchecked, which presented the ssh-ed25519 key ${s3.hostKey}.`)
  })
})

describe('ending connections', () => {
  afterAll(async () => {
    await rig('mend', 's7')
    await rig('mend', 's8')
    await rig('reset', 's8')
  })

  it('close() drops the connection to a server that stopped answering within a few seconds', async () => {
    const s7 = server(fleet, 's7')
    const connection = await connect({
      host: s7.host,
      port: s7.port,
      user: s7.user,
      privateKey: readFileSync(fleet.privateKeyFile, 'utf8'),
      passphrase: '',
      hostKeyPolicy: { knownHosts: parseKnownHosts(readFileSync(fleet.knownHostsFile, 'utf8')), hostKeys: [], strict: true },
      connectTimeout: 10
    })
    // packets vanish without an error on this side, as when a link fails behind a router
    await rig('blackhole', 's7')
    const started = Date.now()
    connection.close()
    // the goodbye never reaches the server, so its end of the socket never closes
    const closed = await Promise.race([connection.closed.then(() => true), new Promise(r => setTimeout(r, 15_000, false))])
    expect(closed).toBe(true)
    expect(Date.now() - started).toBeLessThan(4000)
    await rig('mend', 's7')
  })

  it('the action exits promptly after its summary when a server was cut off mid-deploy', async () => {
    let summaryAt = 0
    const run = await runAction(
      {
        'servers-file': writeRegistry(fleet, ['s8']),
        ...actionKeyInputs(fleet),
        image: fleet.images.v2,
        // a step's own timer (command-timeout + 10 s) notices the dead link before the keepalives do
        'command-timeout': '5',
        'connect-timeout': '3'
      },
      {
        timeoutMs: 150_000,
        onSpawn: child => {
          let seen = ''
          child.stdout?.on('data', (d: Buffer | string) => {
            const before = seen
            seen += d.toString()
            if (!before.includes('[s8] pulling') && seen.includes('[s8] pulling')) void rig('blackhole', 's8')
            if (!summaryAt && /::error::\d+ of \d+ servers did not succeed/.test(seen)) summaryAt = Date.now()
          })
        }
      }
    )
    const exitedAt = Date.now()
    expect(run.timedOut).toBe(false)
    expect(results(run)).toEqual([expect.objectContaining({ name: 's8', status: 'unreachable' })])
    expect(run.summary).toContain('s8')
    expect(summaryAt).toBeGreaterThan(0)
    expect(exitedAt - summaryAt).toBeLessThan(3000)
    expect(run.code).toBe(1)
  })
})
