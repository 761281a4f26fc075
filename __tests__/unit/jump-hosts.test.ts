/**
 * Connections through a jump host, with two in-process ssh2 servers on 127.0.0.1 (fixtures/ssh-server.ts):
 * a bastion that opens `direct-tcpip` channels (what forwardOut asks for) and a target behind it. The real
 * connect() of src/remote/ssh.ts and JumpHosts of src/remote/jump-hosts.ts run against them.
 */
import { once } from 'node:events'
import { createServer as createTcpServer, type AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals'
import * as core from '../__fixtures__/core.js'
import { ed25519KeyPair } from './fixtures/keys.js'
import { publicBlob, sshServer } from './fixtures/ssh-server.js'

jest.unstable_mockModule('@actions/core', () => core)
const { fingerprint } = await import('../../src/remote/host-keys.js')
const { JumpHosts, describeJump } = await import('../../src/remote/jump-hosts.js')
const { connect, ConnectError, ConnectionLost } = await import('../../src/remote/ssh.js')
type SshConnection = Awaited<ReturnType<typeof connect>>

const bastionHostKey = ed25519KeyPair()
const targetHostKey = ed25519KeyPair()
const otherHostKey = ed25519KeyPair()
const deployKey = ed25519KeyPair()
const jumpKey = ed25519KeyPair()

const bastion = sshServer(bastionHostKey, jumpKey)
const target = sshServer(targetHostKey, deployKey)
let bastionPort = 0
let targetPort = 0
/** A port nothing listens on. */
let closedPort = 0

beforeAll(async () => {
  bastionPort = await bastion.listen()
  targetPort = await target.listen()
  const probe = createTcpServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  closedPort = (probe.address() as AddressInfo).port
  await new Promise(resolve => probe.close(resolve))
})

afterAll(async () => {
  await Promise.all([bastion.close(), target.close()])
})

const opened: Array<{ close(): void }> = []
afterEach(() => {
  for (const c of opened.splice(0)) c.close()
  bastion.reset()
  target.reset()
})

const jumpHost = (overrides: Partial<{ port: number; user: string; hostKeys: string[] }> = {}) => ({
  host: '127.0.0.1',
  port: bastionPort,
  user: 'ops',
  hostKeys: [fingerprint(publicBlob(bastionHostKey))],
  ...overrides
})

function jumpHosts(connectTimeout = 5): InstanceType<typeof JumpHosts> {
  const pool = new JumpHosts({ privateKey: jumpKey.private, passphrase: '', knownHosts: [], strict: true, connectTimeout })
  opened.push(pool)
  return pool
}

async function throughJump(
  pool: InstanceType<typeof JumpHosts>,
  options: { jump?: ReturnType<typeof jumpHost>; port?: number; hostKeys?: string[]; connectTimeout?: number } = {}
): Promise<SshConnection> {
  const port = options.port ?? targetPort
  const connection = await connect({
    host: '127.0.0.1',
    port,
    user: 'deploy',
    privateKey: deployKey.private,
    passphrase: '',
    hostKeyPolicy: { knownHosts: [], hostKeys: options.hostKeys ?? [fingerprint(publicBlob(targetHostKey))], strict: true },
    connectTimeout: options.connectTimeout ?? 5,
    via: pool.route(options.jump ?? jumpHost(), '127.0.0.1', port)
  })
  opened.push(connection)
  return connection
}

const step = { step: 'small', script: 'true', args: [] }

describe('a server behind a jump host', () => {
  it('is reached through the jump host, each with its own key, and its host key checked end to end', async () => {
    const pool = jumpHosts()
    const connection = await throughJump(pool)
    await expect(connection.run(step, 10)).resolves.toMatchObject({ code: 0, stdout: 'result=ok' })
    expect(bastion.stats).toMatchObject({ connections: 1, forwards: [`127.0.0.1:${targetPort}`] })
    // (publickey authentication asks twice: whether the key would do, then with its signature)
    expect(new Set(bastion.stats.users)).toEqual(new Set(['ops']))
    expect(target.stats.connections).toBe(1)
    expect(new Set(target.stats.users)).toEqual(new Set(['deploy']))
  })

  it('shares one connection to the jump host between the servers behind it', async () => {
    const pool = jumpHosts()
    const [a, b] = await Promise.all([throughJump(pool), throughJump(pool)])
    await Promise.all([a.run(step, 10), b.run(step, 10)])
    expect(bastion.stats.connections).toBe(1)
    expect(bastion.stats.forwards).toHaveLength(2)
    expect(target.stats.connections).toBe(2)
  })

  it('refuses a jump host whose key is not listed, before any server is touched', async () => {
    const pool = jumpHosts()
    const wrong = jumpHost({ hostKeys: [fingerprint(publicBlob(otherHostKey))] })
    const refused = throughJump(pool, { jump: wrong })
    await expect(refused).rejects.toBeInstanceOf(ConnectError)
    await expect(refused).rejects.toMatchObject({ kind: 'host-key', hop: 'jump' })
    await expect(refused).rejects.toThrow(
      new RegExp(`^jump host ops@127\\.0\\.0\\.1:${bastionPort}: refused before any command ran: HOST KEY MISMATCH: \\[127\\.0\\.0\\.1\\]:${bastionPort} presented`)
    )
    // the servers behind it fail at once with the same reason, without trying again
    await expect(throughJump(pool, { jump: wrong })).rejects.toThrow(/^jump host .*HOST KEY MISMATCH/)
    expect(bastion.stats.forwards).toEqual([])
    expect(target.stats.connections).toBe(0)
  })

  it('refuses a jump host that lists no key with strict checking on', async () => {
    const refused = throughJump(jumpHosts(), { jump: jumpHost({ hostKeys: [] }) })
    await expect(refused).rejects.toThrow(/^jump host ops@127\.0\.0\.1:\d+: refused before any command ran: unknown host key/)
    expect(target.stats.connections).toBe(0)
  })

  it('names the jump host as the hop that failed when it is down', async () => {
    const down = throughJump(jumpHosts(1), { jump: jumpHost({ port: closedPort }) })
    await expect(down).rejects.toMatchObject({ kind: 'network', hop: 'jump' })
    await expect(down).rejects.toThrow(new RegExp(`^jump host ops@127\\.0\\.0\\.1:${closedPort}: cannot connect to 127\\.0\\.0\\.1:${closedPort} after 1 attempt within 1s: .*ECONNREFUSED`))
    expect(target.stats.connections).toBe(0)
  })

  it('says when the jump host cannot reach the server', async () => {
    const unreachable = throughJump(jumpHosts(), { port: closedPort, connectTimeout: 1 })
    await expect(unreachable).rejects.toMatchObject({ kind: 'network', hop: 'target' })
    await expect(unreachable).rejects.toThrow(
      new RegExp(
        `^target deploy@127\\.0\\.0\\.1:${closedPort} through jump host ops@127\\.0\\.0\\.1:${bastionPort}: cannot connect after 1 attempt within 1s: the jump host could not open a connection to it \\(`
      )
    )
  })

  it('refuses a server whose key is not listed, naming it and the jump host it was reached through', async () => {
    const refused = throughJump(jumpHosts(), { hostKeys: [fingerprint(publicBlob(otherHostKey))] })
    await expect(refused).rejects.toMatchObject({ kind: 'host-key', hop: 'target' })
    await expect(refused).rejects.toThrow(
      new RegExp(`^target deploy@127\\.0\\.0\\.1:${targetPort} through jump host ops@127\\.0\\.0\\.1:${bastionPort}: refused before any command ran: HOST KEY MISMATCH`)
    )
  })

  it('says which key the jump host did not accept', async () => {
    const pool = new JumpHosts({ privateKey: deployKey.private, passphrase: '', knownHosts: [], strict: true, connectTimeout: 5 })
    opened.push(pool)
    await expect(throughJump(pool)).rejects.toThrow(/^jump host ops@127\.0\.0\.1:\d+: ops@127\.0\.0\.1:\d+ did not accept the SSH key \(check the jump user's authorized_keys and jump-private-key/)
    expect(target.stats.connections).toBe(0)
  })

  it('connects to the jump host again when its connection dropped; the servers on it lose theirs', async () => {
    const pool = jumpHosts()
    const first = await throughJump(pool)
    for (const client of bastion.stats.clients) client.end()
    await expect(first.closed).resolves.toBeUndefined()
    await expect(first.run(step, 10)).rejects.toBeInstanceOf(ConnectionLost)
    // the hop that dropped: the jump host's own connection
    await expect(first.run(step, 10)).rejects.toThrow(new RegExp(`^small: jump host ops@127\\.0\\.0\\.1:${bastionPort}: connection closed by the server or the network$`))
    const second = await throughJump(pool)
    await expect(second.run(step, 10)).resolves.toMatchObject({ code: 0 })
    expect(bastion.stats.connections).toBe(2)
  })

  it("says the server behind the jump host dropped its connection when the jump host's stays up", async () => {
    const pool = jumpHosts()
    const first = await throughJump(pool)
    for (const client of target.stats.clients) client.end()
    await expect(first.closed).resolves.toBeUndefined()
    await expect(first.run(step, 10)).rejects.toThrow(
      new RegExp(`^small: connection closed by the server or the network \\(behind jump host ops@127\\.0\\.0\\.1:${bastionPort}; its own connection had not failed then\\)$`)
    )
    // the next server goes through the same jump host connection
    const second = await throughJump(pool)
    await expect(second.run(step, 10)).resolves.toMatchObject({ code: 0 })
    expect(bastion.stats.connections).toBe(1)
  })

  it('names a jump host as user@host:port', () => {
    expect(describeJump({ host: '2001:db8::1', port: 2222, user: 'ops', hostKeys: [] })).toBe('ops@[2001:db8::1]:2222')
  })
})
