/**
 * Running a server's steps: the one way a command reaches the server. While the run holds the
 * server's deploy lock every command renews its lease first (commands.withLease); a command that
 * changes what runs takes the switch lock (commands.exclusive); several steps may share one channel
 * (commands.sequence). A non-zero exit becomes StepFailed, carrying the server's own explanation.
 */
import * as commands from '../remote/commands.js'
import type { Part, RemoteCommand } from '../remote/commands.js'
import { ConnectionLost, type CommandResult, type RemoteShell } from '../remote/ssh.js'

/** A step exited non-zero: the server says why on its `error=` line or its output. */
export class StepFailed extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly output: string,
    readonly code: number,
    readonly facts: Map<string, string[]>
  ) {
    super(message)
  }
}

/** The run was cancelled while a step that changes nothing ran. */
export class Cancelled extends Error {}

/** The lease ran out and another run took the lock over: this run must not touch the server again. */
export class LockLost extends Error {}

export type Facts = Map<string, string[]>

/** One part of a sequence as it ended: its facts, and its failure when it exited non-zero. */
export interface Ran {
  step: string
  facts: Facts
  failure?: StepFailed
}

/** Steps that change what runs: they hold the server's switch lock (see commands.exclusive). */
const SWITCHING_STEPS = new Set(['record', 'retag', 'write-env', 'restore-env', 'up', 'stop', 'unrecord'])
const OUTPUT_TAIL_LINES = 20

export class Steps {
  /** Set while this run holds the server's lock: every command renews its lease. */
  holdsLock = false

  constructor(
    public shell: RemoteShell,
    private readonly path: string,
    private readonly lockToken: string,
    private readonly note: (line: string) => void,
    /** What a lost lock leaves behind, for its message (the job knows whether it was switching). */
    private readonly lockLostState: () => string
  ) {}

  /** Runs one step; a non-zero exit becomes StepFailed. Only steps that change nothing take `signal`. */
  async step(command: RemoteCommand, timeout: number, signal?: AbortSignal): Promise<Facts> {
    const result = await this.exec(command, timeout, signal)
    if (result.code !== 0) throw failure(command.step, result.code, result.stdout, result.stderr)
    this.note(`${command.step}: ok`)
    return commands.parseFacts(result.stdout)
  }

  /**
   * Runs several steps in one channel (commands.sequence) and returns how each part that started
   * ended, in order. `until: 'failure'` stops at the first failing part (the last one returned);
   * `'end'` runs them all. Throws only when no part could start (the lease or the switch lock).
   */
  async sequence(parts: Part[], until: 'failure' | 'end', signal?: AbortSignal): Promise<Ran[]> {
    const name = parts.map(p => p.command.step).join('+')
    const command = commands.sequence(name, parts, until)
    const result = await this.exec(command, commands.sequenceSeconds(parts), signal)
    const split = commands.splitSequence(command, result)
    if (split.length === 0 && result.code !== 0) throw failure(parts[0]?.command.step ?? name, result.code, result.stdout, result.stderr)
    // (a channel that ended well has run every part; an answer without some is not one to act on)
    const missing = result.code === 0 ? parts[split.length] : undefined
    if (missing) throw failure(missing.command.step, -1, result.stdout, `the server's answer lacks the ${missing.command.step} step, which should have run`)
    return split.map((part, i) => {
      const facts = commands.parseFacts(part.stdout)
      // a part that never ended was stopped with the whole channel: the sequence's code is its own
      const code = part.code ?? (i === split.length - 1 ? result.code || -1 : -1)
      if (code === 0) {
        this.note(`${part.step}: ok`)
        return { step: part.step, facts }
      }
      const timedOut = code === commands.EXIT_CODE.timedOut || code === commands.EXIT_CODE.killed
      const stderr = timedOut ? `${part.stderr}\n${part.step} did not finish within ${parts[i]!.seconds}s`.trim() : part.stderr
      return { step: part.step, facts, failure: failure(part.step, code, part.stdout, stderr) }
    })
  }

  /**
   * The one way to run a command: under the lease while the lock is held, under the switch lock
   * when it changes what runs, and a lost lock stops the job (LockLost).
   */
  async exec(command: RemoteCommand, timeout: number, signal?: AbortSignal): Promise<CommandResult> {
    const steps = command.parts?.map(p => p.command.step) ?? [command.step]
    if (steps.some(step => SWITCHING_STEPS.has(step))) {
      command = commands.exclusive(this.path, command, timeout)
      timeout = commands.exclusiveTimeout(timeout)
    }
    if (this.holdsLock) command = commands.withLease(this.path, this.lockToken, command)
    const result = await this.shell.run(command, timeout, signal).catch((error: unknown) => {
      // cancelling a step that changes nothing leaves the server as it was
      throw signal?.aborted && error instanceof ConnectionLost ? new Cancelled() : error
    })
    this.checkLease(command, result)
    return result
  }

  private checkLease(command: RemoteCommand, result: { code: number; stdout: string }): void {
    if (!command.lease || result.code !== commands.EXIT_CODE.lockLost) return
    const holder = commands.parseFacts(result.stdout).get('lock_lost')?.at(-1)
    if (holder === undefined) return
    this.holdsLock = false
    throw new LockLost(
      `${command.step}: this run lost the deploy lock of ${commands.stateDir(this.path)}/lock to ${holder.trim() || 'another run'} (the lease ran out, e.g. while the connection was down), so it stopped touching the server: ${this.lockLostState()}`
    )
  }
}

/** A step's failure, with the server's explanation: its `error=` line, else its last stderr line. */
export function failure(step: string, code: number, stdout: string, stderr: string): StepFailed {
  const facts = commands.parseFacts(stdout)
  const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-OUTPUT_TAIL_LINES).join('\n')
  const reason = facts.get('error')?.at(-1) ?? (stderr.trim().split('\n').at(-1) || `exit code ${code}`)
  return new StepFailed(step, `${step} failed: ${reason}`, output, code, facts)
}
