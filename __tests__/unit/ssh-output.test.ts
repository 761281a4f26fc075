/**
 * A server that floods, garbles or drops its output cannot crash the run or exhaust its memory.
 * An in-process ssh2 server answers the real connect() and SshConnection.run() of src/remote/ssh.ts,
 * so this covers what production runs, without the namespaces rig.
 */
import { once } from 'node:events'
import { createServer as createTcpServer, connect as tcpConnect, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net'
import type { Writable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals'
import ssh2 from 'ssh2'
import type { RemoteCommand } from '../../src/remote/commands.js'
import { fingerprint } from '../../src/remote/host-keys.js'
import { OUTPUT_TAIL_BYTES, OutputTail } from '../../src/remote/output-tail.js'
import { connect, ConnectionLost, type SshConnection } from '../../src/remote/ssh.js'
import { ed25519KeyPair } from './fixtures/keys.js'

const { Server } = ssh2
const MiB = 1024 * 1024
const FLOOD_BYTES = 600 * MiB

/** 64 KiB of 1 KiB lines, written again and again: a flood without allocating it. */
const LINES = Buffer.alloc(64 * 1024, 'x')
for (let i = 1023; i < LINES.length; i += 1024) LINES[i] = 0x0a

/** Resolves on the first of `events` on `emitter`, leaving no listener behind. */
function first(emitter: Writable, events: string[]): Promise<void> {
  return new Promise(resolve => {
    const done = () => {
      for (const event of events) emitter.off(event, done)
      resolve()
    }
    for (const event of events) emitter.on(event, done)
  })
}

/** Writes `bytes` of LINES to `out`, waiting whenever the channel's window is full; stops if the channel closes. */
async function pour(out: Writable, bytes: number): Promise<void> {
  for (let sent = 0; sent < bytes && !out.destroyed; sent += LINES.length) {
    if (!out.write(LINES)) await first(out, ['drain', 'close'])
  }
}

type Channel = ssh2.ServerChannel
/** What the server does for each step, by the step's name (renderCommand runs `bash -c … openclaw-STEP`). */
const behaviours: Record<string, (channel: Channel) => Promise<void> | void> = {
  small: channel => {
    channel.write('result=ok\n')
    channel.exit(0)
    channel.end()
  },
  'flood-stdout': async channel => {
    await pour(channel, FLOOD_BYTES)
    channel.write('result=done\n')
    channel.exit(0)
    channel.end()
  },
  'flood-stderr': async channel => {
    channel.write('stage=pull\n')
    await pour(channel.stderr, 300 * MiB)
    // The exit status and close would overtake stderr data still waiting for window space.
    await new Promise(resolve => channel.stderr.write('error=the last words\n', resolve))
    channel.exit(3)
    channel.end()
  },
  // A 3-byte `€` whose first byte falls just outside the kept tail, and one split across two packets.
  'split-char': async channel => {
    channel.write(Buffer.concat([Buffer.from('€'), Buffer.alloc(OUTPUT_TAIL_BYTES - 2, 'a')]))
    await new Promise(resolve => setTimeout(resolve, 20))
    channel.stderr.write(Buffer.from('€').subarray(0, 1))
    await new Promise(resolve => setTimeout(resolve, 20))
    channel.stderr.write(Buffer.from('€').subarray(1))
    channel.exit(0)
    channel.end()
  },
  // The channel closes without an exit status.
  'no-exit': channel => {
    channel.write('half a line')
    channel.close()
  },
  // The TCP connection is reset mid-output: no channel close, no SSH goodbye.
  abrupt: async channel => {
    await pour(channel, 4 * MiB)
    for (const socket of proxied) socket.resetAndDestroy()
  },
  // Takes the step and never answers (a hung server).
  hang: () => undefined,
  echo: channel => {
    const input: Buffer[] = []
    channel.on('data', (chunk: Buffer) => input.push(chunk))
    channel.on('end', () => {
      channel.write(`stdin=${Buffer.concat(input).toString()}\n`)
      channel.exit(0)
      channel.end()
    })
  }
}

const hostKey = ed25519KeyPair()
const userKey = ed25519KeyPair()
let sshServer: InstanceType<typeof Server>
/** A TCP relay in front of the SSH server, so a test can cut the connection as a network would. */
let relay: TcpServer
const proxied = new Set<Socket>()
let port = 0

beforeAll(async () => {
  sshServer = new Server({ hostKeys: [hostKey.private] }, client => {
    client.on('error', () => undefined)
    client.on('authentication', ctx => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])))
    client.on('ready', () => {
      client.on('session', accept => {
        accept().on('exec', (acceptExec, reject, info) => {
          const step = / openclaw-(\S+)/.exec(info.command)?.[1] ?? ''
          const behave = behaviours[step]
          if (!behave) return reject()
          const channel = acceptExec()
          channel.on('error', () => undefined)
          void Promise.resolve(behave(channel)).catch(() => undefined)
        })
      })
    })
  })
  sshServer.listen(0, '127.0.0.1')
  await once(sshServer, 'listening')
  relay = createTcpServer(inbound => {
    const outbound = tcpConnect((sshServer.address() as AddressInfo).port, '127.0.0.1')
    for (const socket of [inbound, outbound]) {
      proxied.add(socket)
      socket.on('error', () => undefined)
      socket.on('close', () => proxied.delete(socket))
    }
    inbound.pipe(outbound).pipe(inbound)
    inbound.on('close', () => outbound.destroy())
    outbound.on('close', () => inbound.destroy())
  })
  relay.listen(0, '127.0.0.1')
  await once(relay, 'listening')
  port = (relay.address() as AddressInfo).port
})

afterAll(async () => {
  for (const socket of proxied) socket.destroy()
  await Promise.all([new Promise(resolve => relay.close(resolve)), new Promise(resolve => sshServer.close(resolve))])
})

const open: SshConnection[] = []
afterEach(() => {
  jest.restoreAllMocks()
  for (const connection of open.splice(0)) connection.close()
})

async function connected(): Promise<SshConnection> {
  const serverKey = Buffer.from(hostKey.public.split(' ')[1]!, 'base64')
  const connection = await connect({
    host: '127.0.0.1',
    port,
    user: 'deploy',
    privateKey: userKey.private,
    passphrase: '',
    hostKeyPolicy: { knownHosts: [], hostKeys: [fingerprint(serverKey)], strict: true },
    connectTimeout: 10
  })
  open.push(connection)
  return connection
}

const step = (name: string, stdin?: string): RemoteCommand => ({ step: name, script: 'true', args: [], stdin })

/** Runs `work`, sampling the process's RSS every 10 ms; returns its result and the peak growth. */
async function withPeakRss<T>(work: () => Promise<T>): Promise<{ value: T; growth: number; ms: number }> {
  global.gc?.()
  const before = process.memoryUsage().rss
  let peak = before
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10)
  const started = Date.now()
  try {
    const value = await work()
    return { value, growth: Math.max(peak, process.memoryUsage().rss) - before, ms: Date.now() - started }
  } finally {
    clearInterval(sampler)
  }
}

describe('remote output is bounded and cannot crash the run', () => {
  it(`keeps the last ${OUTPUT_TAIL_BYTES / MiB} MiB of a ${FLOOD_BYTES / MiB} MiB stdout flood, with the exit code, in bounded memory`, async () => {
    const connection = await connected()
    const { value: result, growth, ms } = await withPeakRss(() => connection.run(step('flood-stdout'), 60))
    process.stdout.write(`flood-stdout: ${FLOOD_BYTES / MiB} MiB in ${ms} ms, peak RSS growth ${(growth / MiB).toFixed(1)} MiB\n`)
    expect(result.code).toBe(0)
    expect(result.stdout.endsWith('\nresult=done')).toBe(true)
    expect(Buffer.byteLength(result.stdout)).toBeLessThanOrEqual(OUTPUT_TAIL_BYTES)
    expect(Buffer.byteLength(result.stdout)).toBeGreaterThan(OUTPUT_TAIL_BYTES - 1024)
    // Every kept line is whole: the one cut at the start was dropped.
    expect(
      result.stdout
        .split('\n')
        .slice(0, -1)
        .every(line => line === 'x'.repeat(1023))
    ).toBe(true)
    expect(result.truncated!.stdout + Buffer.byteLength(result.stdout) + 1).toBe(FLOOD_BYTES + 'result=done\n'.length)
    expect(result.truncated!.stderr).toBe(0)
    expect(growth).toBeLessThan(200 * MiB)
    // The connection still serves the next step.
    await expect(connection.run(step('small'), 10)).resolves.toEqual({ code: 0, stdout: 'result=ok', stderr: '' })
  }, 60_000)

  it('keeps the tail of a stderr flood: the last words and the exit code reach the pipeline', async () => {
    const connection = await connected()
    const { value: result, growth } = await withPeakRss(() => connection.run(step('flood-stderr'), 60))
    expect(result).toMatchObject({ code: 3, stdout: 'stage=pull', truncated: { stdout: 0 } })
    expect(result.stderr.endsWith('\nerror=the last words')).toBe(true)
    expect(Buffer.byteLength(result.stderr)).toBeLessThanOrEqual(OUTPUT_TAIL_BYTES)
    expect(result.truncated!.stderr).toBeGreaterThan(299 * MiB)
    expect(growth).toBeLessThan(200 * MiB)
  }, 60_000)

  it('decodes a character cut at the tail boundary or split across packets without throwing', async () => {
    const connection = await connected()
    const result = await connection.run(step('split-char'), 10)
    expect(result.code).toBe(0)
    // The tail starts inside `€` (no newline to cut at): its last two bytes become U+FFFD each.
    expect(result.stdout).toBe('\uFFFD\uFFFD' + 'a'.repeat(OUTPUT_TAIL_BYTES - 2))
    expect(result.truncated).toEqual({ stdout: 1, stderr: 0 })
    expect(result.stderr).toBe('€')
  })

  it('reports a channel closed without an exit status as exit code 255', async () => {
    const connection = await connected()
    await expect(connection.run(step('no-exit'), 10)).resolves.toEqual({ code: 255, stdout: 'half a line', stderr: '' })
  })

  it('turns a connection reset mid-output into ConnectionLost for that step', async () => {
    const connection = await connected()
    const run = connection.run(step('abrupt'), 10)
    await expect(run).rejects.toBeInstanceOf(ConnectionLost)
    await expect(run).rejects.toThrow(/^abrupt: connection (closed|error)/)
    await expect(connection.run(step('small'), 10)).rejects.toBeInstanceOf(ConnectionLost)
  })

  it('sends stdin and ends it', async () => {
    const connection = await connected()
    await expect(connection.run(step('echo', 'IMAGE=a\nB=2'), 10)).resolves.toMatchObject({ code: 0, stdout: 'stdin=IMAGE=a\nB=2' })
  })

  it('turns a throw while taking output into that step rejecting, and the connection stays usable', async () => {
    const connection = await connected()
    jest.spyOn(OutputTail.prototype, 'push').mockImplementationOnce(() => {
      throw new RangeError('Invalid string length')
    })
    await expect(connection.run(step('flood-stdout'), 30)).rejects.toThrow(new ConnectionLost('flood-stdout: Invalid string length; whether the step did its work is not known'))
    await expect(connection.run(step('small'), 10)).resolves.toMatchObject({ code: 0, stdout: 'result=ok' })
  }, 60_000)

  it("turns a throw in the channel's close handler (where node-ssh's join of 512 MiB threw) into that step rejecting", async () => {
    const connection = await connected()
    jest.spyOn(OutputTail.prototype, 'read').mockImplementationOnce(() => {
      throw new RangeError('Invalid string length')
    })
    await expect(connection.run(step('small'), 10)).rejects.toBeInstanceOf(ConnectionLost)
    await expect(connection.run(step('small'), 10)).resolves.toMatchObject({ code: 0, stdout: 'result=ok' })
  })

  /** Makes the channel of each step `connection` opens throw from its first close(), as ssh2 can on a broken connection. */
  function closeThrows(connection: SshConnection): { thrown: number } {
    const seen = { thrown: 0 }
    const client = (connection as unknown as { ssh: { connection: ssh2.Client } }).ssh.connection
    const exec = client.exec.bind(client) as (command: string, callback: ssh2.ClientCallback) => ssh2.Client
    jest.spyOn(client, 'exec').mockImplementation(((command: string, callback: ssh2.ClientCallback) =>
      exec(command, (error, channel) => {
        if (channel) {
          // (once: ssh2's own destroy() calls close() again when the connection ends)
          const close = channel.close.bind(channel)
          channel.close = () => {
            channel.close = close
            seen.thrown++
            throw new Error('No response from server')
          }
        }
        callback(error, channel)
      })) as typeof client.exec)
    return seen
  }

  it("turns a throw from the channel's close() on a cancel into that step rejecting, never an uncaught exception", async () => {
    const connection = await connected()
    const close = closeThrows(connection)
    const abort = new AbortController()
    const run = connection.run(step('hang'), 10, abort.signal)
    await new Promise(resolve => setTimeout(resolve, 200))
    const uncaught = jest.fn()
    process.on('uncaughtException', uncaught)
    try {
      abort.abort()
      await expect(run).rejects.toThrow(new ConnectionLost('hang: cancelled'))
      await new Promise(resolve => setTimeout(resolve, 50))
    } finally {
      process.off('uncaughtException', uncaught)
    }
    expect(uncaught).not.toHaveBeenCalled()
    expect(close.thrown).toBe(1)
  })

  it("turns a throw from the channel's close() when the client's timer ends a step into that step rejecting", async () => {
    const connection = await connected()
    const close = closeThrows(connection)
    // (the backstop timer waits command-timeout + 10 s; here half a second, when the channel is open)
    const realSetTimeout = setTimeout
    jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => realSetTimeout(fn, ms === 11_000 ? 500 : ms)) as typeof setTimeout)
    const uncaught = jest.fn()
    process.on('uncaughtException', uncaught)
    try {
      await expect(connection.run(step('hang'), 1)).rejects.toThrow(new ConnectionLost('hang: no answer from the server within 1s (command-timeout)'))
    } finally {
      process.off('uncaughtException', uncaught)
    }
    expect(uncaught).not.toHaveBeenCalled()
    expect(close.thrown).toBe(1)
  })
})
