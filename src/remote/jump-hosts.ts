/**
 * Jump hosts (registry field `jump`): one SSH connection per jump host and run, shared by every
 * server behind it, opened when the first of them needs it and closed at the end of the run. Each
 * server's own connection runs inside a channel of it (forwardOut), so the server's host key is
 * checked end to end as on a direct connection; the jump host's key is checked like a server's.
 */
import { describeJump } from '../registry/load.js'
import type { JumpHost } from '../registry/types.js'
import type { KnownHostEntry } from './host-keys.js'
import { connect, ConnectError, type ConnectOptions, type Route, type SshConnection } from './ssh.js'

export { describeJump }

export interface JumpHostSettings {
  privateKey: string
  passphrase: string
  knownHosts: KnownHostEntry[]
  strict: boolean
  /** Seconds for the jump host's connection, its retries included (the input connect-timeout). */
  connectTimeout: number
}

interface Entry {
  connection: Promise<SshConnection>
  /** Set once connected: a later caller that finds it lost connects again. */
  opened?: SshConnection
}

export class JumpHosts {
  private readonly entries = new Map<string, Entry>()
  private closed = false

  constructor(
    private readonly settings: JumpHostSettings,
    private readonly open: (options: ConnectOptions) => Promise<SshConnection> = connect
  ) {}

  /** The route to `host:port` through `jump`, for ConnectOptions.via. */
  route(jump: JumpHost, host: string, port: number, signal?: AbortSignal): Route {
    // the jump host's connection the last stream runs on (a later one may replace it for others)
    let used: SshConnection | undefined
    return {
      label: describeJump(jump),
      open: async timeoutMs => {
        const bastion = await this.connection(jump, signal)
        const stream = await bastion.forwardOut(host, port, timeoutMs)
        used = bastion
        return stream
      },
      lost: () => used?.lostReason
    }
  }

  /**
   * The jump host's connection: the one open already, or a new one when there is none yet or it
   * dropped. A failed connection stays failed for the run, so the servers behind an unreachable or
   * refused jump host fail at once, each with the same reason, instead of each waiting out its
   * connect-timeout again.
   */
  private async connection(jump: JumpHost, signal?: AbortSignal): Promise<SshConnection> {
    if (this.closed) throw new ConnectError(`jump host ${describeJump(jump)}: the run is over`, 'network', 'jump')
    // One connection per jump host and the host keys it may show (two entries may list different ones).
    const key = `${describeJump(jump)} ${[...jump.hostKeys].sort().join(',')}`
    let entry = this.entries.get(key)
    if (!entry || entry.opened?.isLost) {
      entry?.opened?.close()
      const fresh: Entry = { connection: this.connect(jump) }
      fresh.connection.then(c => (fresh.opened = c)).catch(() => undefined)
      this.entries.set(key, fresh)
      entry = fresh
    }
    if (!signal) return entry.connection
    // a cancelled server stops waiting; the jump host's connection goes on for the others
    return await new Promise<SshConnection>((resolve, reject) => {
      const onAbort = () => reject(new ConnectError(`jump host ${describeJump(jump)}: cancelled`, 'network', 'jump'))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      entry.connection.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  private async connect(jump: JumpHost): Promise<SshConnection> {
    try {
      return await this.open({
        host: jump.host,
        port: jump.port,
        user: jump.user,
        privateKey: this.settings.privateKey,
        passphrase: this.settings.passphrase,
        hostKeyPolicy: { knownHosts: this.settings.knownHosts, hostKeys: jump.hostKeys, strict: this.settings.strict },
        connectTimeout: this.settings.connectTimeout,
        role: 'jump'
      })
    } catch (error) {
      const failure = error instanceof ConnectError ? error : new ConnectError(error instanceof Error ? error.message : String(error), 'network')
      throw new ConnectError(`jump host ${describeJump(jump)}: ${failure.message}`, failure.kind, 'jump')
    }
  }

  /** Closes every jump host's connection (the servers' own connections through them are closed first). */
  close(): void {
    this.closed = true
    for (const entry of this.entries.values()) {
      entry.opened?.close()
      entry.connection.then(c => c.close()).catch(() => undefined)
    }
    this.entries.clear()
  }
}
