/**
 * One SSH connection per server (node-ssh over ssh2), reused for all of its steps. Only setting up
 * the connection is retried; a remote step runs once, bounded by a timeout on both ends, and keeps
 * a bounded tail of its output. Nothing a server sends can throw outside the promise of its step.
 */
import { connect as openSocket } from 'node:net'
import type { Duplex } from 'node:stream'
import * as core from '@actions/core'
import { singleLine } from '../untrusted.js'
import { NodeSSH } from 'node-ssh'
import type { Client, ClientChannel, ServerHostKeyAlgorithm } from 'ssh2'
import { EXIT_CODE, type RemoteCommand, renderCommand } from './commands.js'
import { type HostKeyPolicy, type HostKeyVerdict, hostKeyAlgorithms, keyTypesToOffer, verifyHostKey } from './host-keys.js'
import { OutputTail } from './output-tail.js'

export interface CommandResult {
  code: number
  /** The last OUTPUT_TAIL_BYTES of standard output (less the line cut at its start, if any), trimmed. */
  stdout: string
  /** The same for standard error. */
  stderr: string
  /** Set only when output was dropped: how many bytes of each stream are not in `stdout`/`stderr`. */
  truncated?: { stdout: number; stderr: number }
}

/** What the deploy pipeline needs from a server connection; unit tests fake it. */
export interface RemoteShell {
  /** Runs one step; rejects with ConnectionLost when the connection breaks or `signal` aborts it. */
  run(command: RemoteCommand, timeoutSeconds: number, signal?: AbortSignal): Promise<CommandResult>
  close(): void
}

export interface ConnectOptions {
  host: string
  port: number
  user: string
  privateKey: string
  passphrase: string
  hostKeyPolicy: HostKeyPolicy
  /** Total seconds for all attempts. */
  connectTimeout: number
  signal?: AbortSignal
  /** Reach the server through a jump host instead of a TCP connection of our own. */
  via?: Route
  /** A jump host's own connection: errors name it as the hop that failed, and its key input. */
  role?: 'jump'
}

/** How a connection through a jump host gets its socket (see jump-hosts.ts). */
export interface Route {
  /** The jump host, for messages: `ops@bastion.example:22`. */
  label: string
  /** A stream to the server through the jump host, within `timeoutMs`. */
  open(timeoutMs: number): Promise<Duplex>
  /**
   * Why the jump host's connection that the last stream opened runs on is gone, or undefined while it
   * is up: a server connection lost through it says which hop dropped.
   */
  lost?(): string | undefined
}

/** Why a connection could not be made; `network` errors are network trouble worth another try. */
export class ConnectError extends Error {
  constructor(
    message: string,
    readonly kind: 'host-key' | 'auth' | 'network' | 'key',
    /** `jump`: the jump host failed (its own connection retried already), not the server behind it. */
    readonly hop: 'target' | 'jump' = 'target',
    /** ssh2's own words, where the message says it for people (a refused key: "All configured authentication methods failed"). */
    readonly reason?: string
  ) {
    super(message)
    this.name = 'ConnectError'
  }
}

/** The connection broke or a step outlived its timeout: the server's state is not known. */
export class ConnectionLost extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConnectionLost'
  }
}

// Keepalives find a server that vanished mid-step (cable pulled, host down): 3 unanswered probes
// 5 s apart end the connection instead of leaving a step waiting for its full timeout.
const KEEPALIVE_INTERVAL_MS = 5000
const KEEPALIVE_COUNT_MAX = 3
// The remote `timeout` ends a step first; our own timer is the backstop when the connection itself hangs.
const CLIENT_TIMER_SLACK_SECONDS = 10
// close() says goodbye and waits this long for the server to close its end; a server that vanished
// never does, and the half-open socket would hold the process for the kernel's ~15 minutes of retries.
const CLOSE_GRACE_MS = 2000

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** Connects with retries and growing pauses (1 s, 2 s, 4 s …) until `connectTimeout` runs out. */
export async function connect(options: ConnectOptions): Promise<SshConnection> {
  const deadline = Date.now() + options.connectTimeout * 1000
  let pause = 1000
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectVerified(options, deadline)
    } catch (error) {
      const failure = error instanceof ConnectError ? error : new ConnectError(describeNetworkError(error), 'network')
      // the jump host's connection had its own attempts: its verdict stands
      if (failure.hop === 'jump') throw failure
      const remaining = deadline - Date.now()
      if (failure.kind !== 'network' || remaining < pause || options.signal?.aborted) {
        const attempts = `after ${attempt} attempt${attempt > 1 ? 's' : ''} within ${options.connectTimeout}s`
        if (options.via) {
          const target = `target ${options.user}@${formatHostPort(options.host, options.port)} through jump host ${options.via.label}`
          failure.message = failure.kind === 'network' ? `${target}: cannot connect ${attempts}: ${failure.message}` : `${target}: ${failure.message}`
        } else if (failure.kind === 'network') {
          failure.message = `cannot connect to ${options.host}:${options.port} ${attempts}: ${failure.message}`
        }
        throw failure
      }
      await sleep(pause)
      pause = Math.min(pause * 2, 8000)
    }
  }
}

/** The server holds no host key of the types asked for. */
class NoKeyOfListedType extends ConnectError {
  constructor(host: string, port: number, keyTypes: string[]) {
    super(
      `refused before any command ran: ${host}:${port} has no host key of a type listed for it (${keyTypes.join(', ')}). ` +
        `If the server was rebuilt with other keys, verify them out of band and update known-hosts or hostKey.`,
      'host-key'
    )
  }
}

/** The server's key matched nothing the policy lists. */
class HostKeyRefused extends ConnectError {
  constructor(readonly verdict: Extract<HostKeyVerdict, { trusted: false }>) {
    super(`refused before any command ran: ${verdict.reason}`, 'host-key')
  }
}

/**
 * One connection whose host key the policy accepts. The server shows the key of the first type we
 * ask for that it has; when only registry fingerprints (which do not name a type) could vouch for
 * another type, the server is asked again without the type it showed, until none is left.
 */
async function connectVerified(options: ConnectOptions, deadline: number): Promise<SshConnection> {
  const { hostKeyPolicy: policy, host, port } = options
  let offer = keyTypesToOffer(policy, host, port)
  let refused: HostKeyRefused | undefined
  const shown: string[] = []
  const mismatch = () => {
    if (refused && shown.length > 1) refused.message += ` The server showed these keys, one per type asked for: ${shown.join(', ')}.`
    return refused!
  }
  for (;;) {
    try {
      return await connectOnce(options, offer, Math.max(1000, deadline - Date.now()))
    } catch (error) {
      // The server holds no key of the types left to ask for: what it showed before is the answer.
      if (error instanceof NoKeyOfListedType && refused) throw mismatch()
      if (!(error instanceof HostKeyRefused)) throw error
      refused = error
      const { keyType, fingerprint } = error.verdict
      shown.push(`${keyType} ${fingerprint}`)
      offer = offer.filter(type => type !== keyType)
      if (!error.verdict.otherTypesMayMatch || offer.length === 0 || options.signal?.aborted) throw mismatch()
    }
  }
}

async function connectOnce(options: ConnectOptions, keyTypes: string[], readyTimeoutMs: number): Promise<SshConnection> {
  const ssh = new NodeSSH()
  let verdict: HostKeyVerdict | undefined
  // Our own socket, so that close() can drop it: after ssh2's end() its client cannot destroy it.
  // Through a jump host it is the jump host's channel to the server (ssh2's forwardOut).
  const started = Date.now()
  const socket: Duplex = options.via ? await options.via.open(readyTimeoutMs) : openSocket({ host: options.host, port: options.port })
  readyTimeoutMs = Math.max(1000, readyTimeoutMs - (Date.now() - started))
  try {
    await ssh.connect({
      host: options.host,
      port: options.port,
      sock: socket,
      username: options.user,
      privateKey: options.privateKey,
      passphrase: options.passphrase || undefined,
      readyTimeout: readyTimeoutMs,
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      // Only the key given; never an agent or a password prompt.
      agent: undefined,
      tryKeyboard: false,
      algorithms: { serverHostKey: hostKeyAlgorithms(keyTypes) as ServerHostKeyAlgorithm[] },
      hostVerifier: (key: Buffer) => {
        verdict = verifyHostKey(options.hostKeyPolicy, options.host, options.port, key)
        return verdict.trusted
      }
    })
  } catch (error) {
    ssh.dispose()
    socket.destroy()
    if (verdict && !verdict.trusted) throw new HostKeyRefused(verdict)
    const message = error instanceof Error ? error.message : String(error)
    if (/no matching host key format/i.test(message)) throw new NoKeyOfListedType(options.host, options.port, keyTypes)
    if (/authentication methods failed/i.test(message)) {
      if (options.role === 'jump') {
        throw new ConnectError(
          `${options.user}@${options.host}:${options.port} did not accept the SSH key (check the jump user's authorized_keys and jump-private-key, or ssh-private-key when jump-private-key is empty)`,
          'auth'
        )
      }
      throw new ConnectError(`${options.user}@${options.host}:${options.port} did not accept the SSH key (check the deploy user's authorized_keys and ssh-private-key)`, 'auth', 'target', message)
    }
    if (/passphrase|private key|Cannot parse privateKey|Unsupported key format/i.test(message)) {
      if (options.role === 'jump') throw new ConnectError(`the jump-private-key input cannot be used: ${message} (is ssh-passphrase right?)`, 'key')
      throw new ConnectError(`the ssh-private-key input cannot be used: ${message} (is ssh-passphrase right?)`, 'key')
    }
    throw error
  }
  if (verdict?.trusted && verdict.via === 'unchecked') {
    core.warning(
      `strict-host-key-checking is off: accepted ${options.host}:${options.port} unchecked, which presented the ${singleLine(verdict.keyType, 100)} key ${verdict.fingerprint}. ` +
        `Nothing lists a key for this host: verify the fingerprint out of band and add "hostKey": "${verdict.fingerprint}" to its registry entry (or its line to known-hosts).`
    )
  }
  return new SshConnection(ssh, socket, verdict, options.via)
}

/** `host:port`, IPv6 in brackets. */
function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    if (/Timed out while waiting for handshake/i.test(error.message)) return 'no SSH handshake (timed out)'
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message
  }
  return String(error)
}

/** What one command left: its exit code (null when it ended without one, e.g. by a signal) and output tails. */
type ExecResult = Omit<CommandResult, 'code'> & { code: number | null }

/**
 * Runs one command line on a channel of its own. node-ssh's execCommand would keep every chunk a
 * server sends and join them at the end; this keeps only the tail of each stream (OutputTail).
 *
 * ssh2 emits a channel's events partly from inside its socket handler, which turns a throw into an
 * 'error' that ends the whole connection, and partly on later ticks ('close' comes after 'end'),
 * where a throw is an uncaught exception that ends the process and with it every other server's
 * deploy. So every listener here is guarded: whatever throws in it rejects this step instead, as
 * ConnectionLost because the step may or may not have done its work: the pipeline handles it like a
 * broken connection (reconnect, and roll back a server that was being switched).
 */
function execBounded(client: Client, command: RemoteCommand, commandLine: string, onChannel: (channel: ClientChannel) => void): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const stdout = new OutputTail()
    const stderr = new OutputTail()
    let channel: ClientChannel | undefined
    let exitCode: number | null = null
    let settled = false
    const settle = (outcome: () => void) => {
      if (settled) return
      settled = true
      outcome()
    }
    const fail = (error: unknown) => {
      settle(() => reject(new ConnectionLost(`${command.step}: ${errorMessage(error)}; whether the step did its work is not known`)))
      try {
        channel?.close()
      } catch {
        // The channel is gone already: nothing left to stop.
      }
    }
    const guard =
      <A extends unknown[]>(listener: (...args: A) => void) =>
      (...args: A): void => {
        try {
          listener(...args)
        } catch (error) {
          fail(error)
        }
      }
    const finish = () => {
      const out = stdout.read()
      const err = stderr.read()
      const result: ExecResult = { code: exitCode, stdout: out.text.trim(), stderr: err.text.trim() }
      if (out.dropped > 0 || err.dropped > 0) result.truncated = { stdout: out.dropped, stderr: err.dropped }
      settle(() => resolve(result))
    }
    const onOpen = (error: Error | undefined, opened: ClientChannel) => {
      // The server refused the channel: the command never ran.
      if (error) return settle(() => reject(error))
      channel = opened
      onChannel(opened)
      opened.on(
        'data',
        guard((chunk: Buffer) => {
          if (!settled) stdout.push(chunk)
        })
      )
      opened.stderr.on(
        'data',
        guard((chunk: Buffer) => {
          if (!settled) stderr.push(chunk)
        })
      )
      // A stream's 'error' without a listener is thrown.
      opened.on('error', fail)
      opened.stderr.on('error', fail)
      opened.on(
        'exit',
        guard((code: number | null) => (exitCode = code ?? null))
      )
      opened.on('close', guard(finish))
      if (command.stdin != null) opened.write(command.stdin)
      opened.end()
    }
    try {
      client.exec(commandLine, guard(onOpen))
    } catch (error) {
      // ssh2 throws at once when the socket is no longer writable.
      reject(new ConnectionLost(`${command.step}: ${errorMessage(error)}`))
    }
  })
}

/**
 * Closes a step's channel from a timer or an abort listener, where a throw would be uncaught and end
 * the process: ssh2 can throw from close() when the connection under it is torn down. The step has
 * its result already (rejected first); a channel that cannot be closed goes with its connection,
 * which the server's job closes.
 */
function stopChannel(channel: ClientChannel | undefined): void {
  try {
    channel?.close()
  } catch {
    // (see above)
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

export class SshConnection implements RemoteShell {
  private lost?: string
  private closing = false
  private readonly pending = new Set<(reason: string) => void>()
  /** Settles once the connection's socket is closed. */
  readonly closed: Promise<void>

  constructor(
    private readonly ssh: NodeSSH,
    private readonly socket: Duplex,
    readonly hostKey: HostKeyVerdict | undefined,
    /** The jump host the connection runs through, if any. */
    private readonly route?: Route
  ) {
    const client = ssh.connection
    // node-ssh stops listening for errors once connected; an unhandled 'error' would end the process.
    client?.on('error', error => this.markLost(`connection error: ${error.message}`))
    client?.on('close', () => this.markLost('connection closed by the server or the network'))
    this.closed = socket.destroyed ? Promise.resolve() : new Promise(resolve => socket.once('close', () => resolve()))
  }

  /** The connection broke or was closed: it serves no further step. */
  get isLost(): boolean {
    return this.lost !== undefined
  }

  /** Why the connection is gone (`closed` when we closed it), or undefined while it is up. */
  get lostReason(): string | undefined {
    return this.lost
  }

  /**
   * A stream to `host:port` opened by this server (a jump host), for another SSH connection to run
   * on: ssh2's `forwardOut`, what OpenSSH's ProxyJump asks for. Rejects with the jump host's reason
   * (e.g. "Connection refused", "administratively prohibited") or when it does not answer in time.
   */
  forwardOut(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    const client = this.ssh.connection
    if (this.lost || !client) return Promise.reject(new Error(`the jump host's connection is gone (${this.lost ?? 'not connected'})`))
    return new Promise((resolve, reject) => {
      let done = false
      const timer = setTimeout(() => {
        done = true
        reject(new Error(`the jump host did not open a connection to it within ${Math.round(timeoutMs / 1000)}s`))
      }, timeoutMs)
      const onLost = (reason: string) => {
        if (done) return
        done = true
        clearTimeout(timer)
        reject(new Error(`the jump host's connection broke: ${reason}`))
      }
      this.pending.add(onLost)
      try {
        client.forwardOut('127.0.0.1', 0, host, port, (error, channel) => {
          this.pending.delete(onLost)
          if (done) {
            // too late: nobody waits for it any more
            channel?.destroy()
            return
          }
          done = true
          clearTimeout(timer)
          if (error) reject(new Error(`the jump host could not open a connection to it (${error.message.replace(/^\(SSH\) /, '')})`))
          else resolve(channel)
        })
      } catch (error) {
        this.pending.delete(onLost)
        onLost(errorMessage(error))
      }
    })
  }

  private markLost(reason: string): void {
    this.lost ??= this.hop(reason)
    for (const reject of this.pending) reject(this.lost)
    this.pending.clear()
  }

  /**
   * Through a jump host, which hop dropped: the jump host's own connection, when it is gone too (ssh2
   * reports it lost before it closes the channels that ran on it), else the server's behind it.
   */
  private hop(reason: string): string {
    if (!this.route) return reason
    const jump = this.route.lost?.()
    return jump === undefined ? `${reason} (behind jump host ${this.route.label}; its own connection had not failed then)` : `jump host ${this.route.label}: ${jump}`
  }

  async run(command: RemoteCommand, timeoutSeconds: number, signal?: AbortSignal): Promise<CommandResult> {
    if (this.lost) throw new ConnectionLost(`${command.step}: ${this.lost}`)
    if (signal?.aborted) throw new ConnectionLost(`${command.step}: cancelled`)
    const client = this.ssh.connection
    if (!client) throw new ConnectionLost(`${command.step}: not connected`)
    let channel: ClientChannel | undefined
    let timer: NodeJS.Timeout | undefined
    let onLost: ((reason: string) => void) | undefined
    let onAbort: (() => void) | undefined
    const stopped = new Promise<never>((_, reject) => {
      onLost = reason => reject(new ConnectionLost(`${command.step}: ${reason}`))
      this.pending.add(onLost)
      timer = setTimeout(
        () => {
          reject(new ConnectionLost(`${command.step}: no answer from the server within ${timeoutSeconds}s (command-timeout)`))
          stopChannel(channel)
        },
        (timeoutSeconds + CLIENT_TIMER_SLACK_SECONDS) * 1000
      )
      onAbort = () => {
        reject(new ConnectionLost(`${command.step}: cancelled`))
        stopChannel(channel)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
    })
    try {
      const response = await Promise.race([execBounded(client, command, renderCommand(command, timeoutSeconds), c => (channel = c)), stopped])
      // `timeout` had to stop the step.
      if (response.code === EXIT_CODE.timedOut || response.code === EXIT_CODE.killed) {
        return { ...response, code: response.code, stderr: `${response.stderr}\n${command.step} did not finish within ${timeoutSeconds}s`.trim() }
      }
      return { ...response, code: response.code ?? 255 }
    } finally {
      clearTimeout(timer)
      if (onLost) this.pending.delete(onLost)
      if (onAbort) signal?.removeEventListener('abort', onAbort)
      stopped.catch(() => undefined)
    }
  }

  /** Ends the session; the socket is dropped if the server has not closed it within CLOSE_GRACE_MS. */
  close(): void {
    this.lost ??= 'closed'
    if (this.closing) return
    this.closing = true
    this.ssh.dispose()
    if (this.socket.destroyed) return
    const drop = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS)
    // The socket keeps the process alive until it closes; the timer itself need not.
    drop.unref()
    void this.closed.then(() => clearTimeout(drop))
  }
}
