/**
 * What every per-server job keeps: its ServerResult, built as it goes (a log line per step, warnings,
 * progress for the live view) and finished with a status. The deploy pipeline and the key rotation
 * extend it.
 */
import type { Server } from '../registry/types.js'
import { isSuccess, type ServerResult, type Status } from './result.js'
import type { RunContext } from './run-context.js'

export abstract class ServerJob {
  private readonly started = Date.now()
  protected readonly result: ServerResult

  constructor(
    protected readonly server: Server,
    protected readonly ctx: RunContext
  ) {
    this.result = { server, status: 'failed', durationMs: 0, log: [] }
  }

  /** A fact the server reported (its last value), else `fallback`; without either, the answer is not one to act on. */
  protected fact(facts: Map<string, string[]>, key: string, fallback?: string): string {
    const value = facts.get(key)?.at(-1)
    if (value !== undefined) return value
    if (fallback !== undefined) return fallback
    throw new Error(`the server's answer lacks "${key}"`)
  }

  protected note(line: string): void {
    this.result.log.push(line)
  }

  protected warn(line: string): void {
    this.note(`warning: ${line}`)
    ;(this.result.warnings ??= []).push(line)
  }

  protected progress(state: string): void {
    this.note(`— ${state}`)
    this.ctx.onProgress?.(this.server, state)
  }

  protected finish(status: Status, error?: string): ServerResult {
    this.result.status = status
    if (error) this.result.error = error
    else if (isSuccess(this.result)) delete this.result.error
    this.result.durationMs = Date.now() - this.started
    return this.result
  }
}
