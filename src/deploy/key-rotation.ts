/**
 * `mode: rotate-key` on one server: moves the login user's `~/.ssh/authorized_keys` from the current
 * deploy key (`ssh-private-key`) to the new one (`new-ssh-private-key`) so that at every moment one of
 * them logs in, and a server the new key cannot reach keeps the current one:
 *
 *   1. log in with the current key. Refused, but the new key logs in and the current key has no line
 *      any more: this server was rotated already (`unchanged`), so a run after a partial one is safe;
 *   2. add the new key next to each line of the current one, with the same options (nothing when
 *      the new key has a line already);
 *   3. log in with the new key on a second connection (the same host key checks and jump route) and
 *      check who that is. If it cannot: take back the line(s) added (through the first connection),
 *      `failed`, the current key still works;
 *   4. through the new key's connection, remove the current key's lines, and check that the current
 *      key is now refused: `rotated`.
 *
 * It takes no deploy lock: nothing of the project changes. Every outcome is a ServerResult value.
 */
import * as keys from '../remote/authorized-keys.js'
import type { RemoteCommand } from '../remote/commands.js'
import { describeKey, type PublicKey } from '../remote/deploy-keys.js'
import { ConnectError, ConnectionLost, type RemoteShell } from '../remote/ssh.js'
import { describeJump } from '../registry/load.js'
import type { Server } from '../registry/types.js'
import { singleLine } from '../untrusted.js'
import type { KeyRotation } from '../settings.js'
import type { RunContext } from './run-context.js'
import { ServerJob } from './server-job.js'
import type { ServerResult, Status } from './result.js'
import { StepFailed, Steps } from './steps.js'

/** Each of these steps reads or rewrites one small file; its flock waits 10 s at most. */
const KEYS_STEP_SECONDS = 60
/** How sshd_config lines quoted from the server are bounded in a message. */
const QUOTED_CHARS = 200

export async function rotateKey(server: Server, ctx: RunContext): Promise<ServerResult> {
  return new KeyRotationJob(server, ctx).run()
}

class KeyRotationJob extends ServerJob {
  private readonly shells: RemoteShell[] = []
  /** What is true of the server now, for a failure's message; empty while nothing was changed. */
  private state = ''

  async run(): Promise<ServerResult> {
    try {
      const rotation = this.ctx.settings.keyRotation
      // (readSettings sets both in mode rotate-key outside a dry run, which connects nowhere)
      if (!rotation?.current) throw new Error('mode rotate-key without its keys')
      return await this.rotate(rotation, rotation.current)
    } catch (error) {
      if (error instanceof StepFailed) {
        this.result.failedStep = error.step
        this.result.failedOutput = error.output
      }
      const status: Status = error instanceof ConnectionLost ? 'unreachable' : 'failed'
      return this.finish(status, `${errorText(error)}${this.state ? `; ${this.state}` : ''}`)
    } finally {
      for (const shell of this.shells) shell.close()
    }
  }

  private async rotate(rotation: KeyRotation, current: PublicKey): Promise<ServerResult> {
    const { next } = rotation
    if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled before this server started')
    this.progress('connecting')
    let first: RemoteShell
    try {
      first = await this.open()
    } catch (error) {
      if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled while connecting; nothing changed on this server')
      if (error instanceof ConnectError && error.kind === 'auth' && error.hop === 'target') return await this.afterRefusal(error, rotation, current)
      return this.finish(connectStatus(error), errorText(error))
    }
    this.note(`connected to ${this.route()} with the current key ${describeKey(current)}`)

    this.progress('adding the new key')
    const adding = keys.addKey(current, next, keys.rotatedComment())
    const added = Number(this.fact(await this.step(first, adding, 'the new key may or may not have been added next to the current one, which still works: run the rotation again'), 'added'))
    this.note(
      added
        ? `added the new key ${describeKey(next)} to authorized_keys with the options of the current key's line${added === 1 ? '' : 's'} (${added} line${added === 1 ? '' : 's'})`
        : `the new key ${describeKey(next)} has a line in authorized_keys already: nothing added`
    )
    this.state = 'both keys log in now (the new key has a line next to the current one): run the rotation again to finish'
    if (this.ctx.signal.aborted) return this.finish('failed', `cancelled after adding the new key; ${this.state}`)

    this.progress('logging in with the new key')
    let second: RemoteShell
    try {
      second = await this.open(rotation)
      await this.proveLogin(second)
    } catch (error) {
      return await this.takeBack(error, rotation, current, added)
    }
    this.note(`logged in with the new key ${describeKey(next)} as ${this.server.user}`)

    this.progress('removing the old key')
    const removing = keys.removeKey(current, next)
    const removed = Number(this.fact(await this.step(second, removing, 'the current key’s lines may or may not have been removed; the new key logs in: run the rotation again to finish'), 'removed'))
    this.note(`removed the current key ${describeKey(current)} from authorized_keys (${removed} line${removed === 1 ? '' : 's'})`)
    this.state = 'the new key logs in, and the current key has no line in authorized_keys any more'

    // The rotation is done when the current key is refused, not when its line is gone.
    this.progress('checking the old key is refused')
    const still = await this.currentKeyLogsIn()
    if (still === true) {
      return this.finish(
        'failed',
        `the current key ${describeKey(current)} still logs in after its lines were removed from ~/.ssh/authorized_keys: this server's sshd also reads keys from elsewhere ` +
          `(AuthorizedKeysFile, e.g. .ssh/authorized_keys2, or AuthorizedKeysCommand in sshd_config). The new key works; remove the current key there by hand`
      )
    }
    if (still === false) this.note('the current key is refused now')
    else this.warn(`could not check that the current key is refused now (${still}); the new key works and the current key has no line in authorized_keys any more`)
    return this.finish('rotated')
  }

  /**
   * The current key was refused. Rotated already when the new key logs in and the current key has
   * no line; anything else is reported, and nothing is changed.
   */
  private async afterRefusal(refused: ConnectError, rotation: KeyRotation, current: PublicKey): Promise<ServerResult> {
    const { next } = rotation
    let fresh: RemoteShell
    try {
      fresh = await this.open(rotation)
    } catch (error) {
      if (this.ctx.signal.aborted) return this.finish('skipped', 'cancelled while connecting; nothing changed on this server')
      const why =
        error instanceof ConnectError && error.kind === 'auth'
          ? `the new key ${describeKey(next)} is not accepted either${error.reason ? ` (${error.reason})` : ''}`
          : `the new key: ${errorText(error)}`
      return this.finish(connectStatus(error), `${refused.message}; ${why}. Nothing was changed`)
    }
    this.note(`the current key ${describeKey(current)} was refused; logged in to ${this.route()} with the new key ${describeKey(next)}`)
    const facts = await this.step(fresh, keys.countKeys(current, next))
    const oldLines = Number(this.fact(facts, 'old_lines'))
    const newLines = Number(this.fact(facts, 'new_lines'))
    if (oldLines > 0) {
      return this.finish(
        'failed',
        `the current key ${describeKey(current)} was refused although authorized_keys still holds ${oldLines} line${oldLines === 1 ? '' : 's'} for it ` +
          `(sshd refuses it for another reason: its options, e.g. from=, or PubkeyAcceptedAlgorithms in sshd_config); the new key logs in. Nothing was changed: check the server`
      )
    }
    await this.proveLogin(fresh)
    if (newLines === 0) this.warn('the new key logs in although ~/.ssh/authorized_keys holds no line for it: this server’s sshd reads keys from elsewhere (AuthorizedKeysFile, AuthorizedKeysCommand)')
    this.note('already rotated: the new key logs in and the current key is refused and has no line in authorized_keys; nothing changed')
    return this.finish('unchanged')
  }

  /** The new key could not log in: take back what this run added, through the first connection. */
  private async takeBack(error: unknown, rotation: KeyRotation, current: PublicKey, added: number): Promise<ServerResult> {
    const { next } = rotation
    const why =
      error instanceof ConnectError && error.kind === 'auth' && error.hop === 'target'
        ? `${this.server.user}@${this.server.host}:${this.server.port} refused it${error.reason ? ` (${error.reason})` : ''}: does its sshd accept ${next.label} keys (PubkeyAcceptedAlgorithms in sshd_config)?`
        : errorText(error)
    this.note(`the new key could not log in: ${why}`)
    this.progress('taking the new key back')
    const first = this.shells[0]!
    try {
      const removed = Number(this.fact(await this.step(first, keys.removeKey(next, current, keys.ROTATED_MARK)), 'removed'))
      const what =
        removed > 0
          ? `the new key's line${removed === 1 ? '' : 's'} this action added ${removed === 1 ? 'was' : 'were'} removed again`
          : added === 0
            ? 'its line in authorized_keys, which this action had not added, was kept'
            : 'nothing was left to remove'
      return this.finish('failed', `the new key ${describeKey(next)} could not log in: ${why}; ${what}, and the current key (ssh-private-key) still works`)
    } catch (undo) {
      return this.finish(
        'failed',
        `the new key ${describeKey(next)} could not log in: ${why}; taking its line back failed (${errorText(undo)}): the current key still works; ` +
          `remove the line commented "${keys.ROTATED_MARK} …" from ~/.ssh/authorized_keys by hand, or run the rotation again`
      )
    }
  }

  /** The login proof: a command runs, as the registry's user. */
  private async proveLogin(shell: RemoteShell): Promise<void> {
    const user = this.fact(await this.step(shell, keys.whoAmI()), 'user')
    if (user !== this.server.user) throw new Error(`logged in as ${singleLine(user, QUOTED_CHARS)}, not as ${this.server.user}`)
  }

  /** true when the current key still logs in, false when it is refused; else why that is not known. */
  private async currentKeyLogsIn(): Promise<boolean | string> {
    try {
      const shell = await this.open()
      shell.close()
      return true
    } catch (error) {
      if (error instanceof ConnectError && error.kind === 'auth' && error.hop === 'target') return false
      return errorText(error)
    }
  }

  /** A connection with the current key, or with the new one. */
  private async open(rotation?: KeyRotation): Promise<RemoteShell> {
    const key = rotation ? { privateKey: rotation.newPrivateKey, passphrase: rotation.newPassphrase } : undefined
    const shell = await this.ctx.connect(this.server, this.ctx.signal, key)
    this.shells.push(shell)
    return shell
  }

  /** Runs one step; `ifLost` says what may have changed when the connection breaks during it (instead of this.state). */
  private async step(shell: RemoteShell, command: RemoteCommand, ifLost?: string): Promise<Map<string, string[]>> {
    // (no lock: the steps run as every other step does, without a lease)
    const steps = new Steps(
      shell,
      this.server.path,
      this.ctx.lockToken,
      line => this.note(line),
      () => ''
    )
    try {
      return await steps.step(command, Math.min(this.ctx.settings.commandTimeout, KEYS_STEP_SECONDS))
    } catch (error) {
      if (ifLost && error instanceof ConnectionLost) {
        this.state = ''
        throw new ConnectionLost(`${error.message}: ${ifLost}`)
      }
      const config = error instanceof StepFailed ? (error.facts.get('sshd_keys') ?? []).map(line => singleLine(line, QUOTED_CHARS)) : []
      if (config.length) (error as StepFailed).message += ` (sshd_config: ${config.join('; ')})`
      throw error
    }
  }

  private route(): string {
    return `${this.server.user}@${this.server.host}:${this.server.port}${this.server.jump ? ` through jump host ${describeJump(this.server.jump)}` : ''}`
  }
}

function connectStatus(error: unknown): Status {
  return error instanceof ConnectError && error.kind !== 'network' ? 'failed' : 'unreachable'
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
