/**
 * Fan-out over the selected servers: at most `max-parallel` at once, canaries first, and no new
 * server once `max-failures` is exceeded or the run is cancelled. Each server's outcome is a value,
 * so one server's trouble never stops or harms another's.
 */
import pLimit from 'p-limit'
import type { Server } from '../registry/types.js'
import type { FailureBudget } from '../settings.js'
import { runServer } from './pipeline.js'
import type { RunContext } from './run-context.js'
import { isFailure, isSuccess, type ServerResult } from './result.js'

export interface FleetHooks {
  /** Called once per server as soon as its result is known (for its log group). */
  onServerDone?(result: ServerResult): void
}

export function skippedResult(server: Server, reason: string): ServerResult {
  return { server, status: 'skipped', durationMs: 0, error: reason, log: [`skipped: ${reason}`] }
}

const CANCELLED_BEFORE_START = 'cancelled: the run was cancelled before this server started'

/** How many failures are tolerated before no further server starts. */
export function failuresAllowed(budget: FailureBudget | undefined, total: number): number {
  if (!budget) return Infinity
  return budget.kind === 'count' ? budget.value : Math.floor((total * budget.value) / 100)
}

/** Runs every server (in plan order, canaries first) and returns the results in that order. */
export async function runFleet(servers: Server[], ctx: RunContext, hooks: FleetHooks = {}): Promise<ServerResult[]> {
  const { settings } = ctx
  // Reading status changes nothing, so neither canaries nor a failure budget apply to it.
  const gated = settings.mode !== 'status'
  const allowed = gated ? failuresAllowed(settings.maxFailures, servers.length) : Infinity
  const limit = pLimit(settings.maxParallel)
  let failures = 0
  let stopReason: string | undefined

  const settle = (result: ServerResult): ServerResult => {
    hooks.onServerDone?.(result)
    return result
  }
  const launch = (server: Server) =>
    limit(async () => {
      if (ctx.signal.aborted) return settle(skippedResult(server, CANCELLED_BEFORE_START))
      if (stopReason) return settle(skippedResult(server, stopReason))
      const result = await runServer(server, ctx)
      if (isFailure(result)) {
        failures++
        if (failures > allowed && !stopReason) {
          stopReason = `max-failures (${settings.maxFailures!.value}${settings.maxFailures!.kind === 'percent' ? '%' : ''}) exceeded: ${failures} server(s) failed`
        }
      }
      return settle(result)
    })

  const canaryCount = gated ? Math.min(settings.canary, servers.length) : 0
  const canaries = await Promise.all(servers.slice(0, canaryCount).map(launch))
  const failedCanaries = canaries.filter(r => !isSuccess(r))
  if (failedCanaries.length > 0) {
    const names = failedCanaries.map(r => `${r.server.name} (${r.status})`).join(', ')
    // A canary stopped by the cancel did not fail: say why the rest did not start.
    const reason = ctx.signal.aborted ? CANCELLED_BEFORE_START : `canary failed: ${names}`
    return [...canaries, ...servers.slice(canaryCount).map(s => settle(skippedResult(s, reason)))]
  }
  return [...canaries, ...(await Promise.all(servers.slice(canaryCount).map(launch)))]
}
