import * as core from '@actions/core'
import { skippedResult, runFleet } from './deploy/fleet.js'
import { isSuccess, type ServerResult } from './deploy/result.js'
import { createRunContext } from './deploy/run-context.js'
import { reportError } from './errors.js'
import { formatPlan, planFromInputs, type Plan } from './plan.js'
import { RegistryError } from './registry/load.js'
import { TenantDeployments } from './report/deployments.js'
import { annotate, logServer, setOutputs, writeSummary } from './report/report.js'
import { readSettings, type Settings } from './settings.js'

/** The whole action: inputs → registry → plan → per-server pipeline → report. */
export async function run(): Promise<void> {
  // The summary's heading shows the run's wall time: from here to just before it is written.
  const started = Date.now()
  try {
    const settings = readSettings()
    const plan = planFromInputs(settings, core.info)
    core.info(formatPlan(plan, settings))
    const results = settings.dryRun ? planned(plan, settings) : await execute(plan, settings)
    setOutputs(results)
    // The summary and annotations come before the step fails, so a red step still shows its table.
    await writeSummary(results, settings, Date.now() - started)
    annotate(results)
    const bad = results.filter(r => !isSuccess(r) && !plannedSkip(plan, r))
    if (bad.length) {
      core.setFailed(`${bad.length} of ${results.length} servers did not succeed: ${bad.map(r => `${r.server.name} ${r.status}`).join(', ')}`)
    }
  } catch (error) {
    // Registry problems also mark the file itself, so a pull request shows them on the right line.
    if (error instanceof RegistryError) {
      for (const p of error.details.slice(0, 9)) core.error(p.message, { title: 'Server registry', file: p.file, startLine: p.line, startColumn: p.column })
    }
    reportError(undefined, error, core.setFailed)
  }
}

/** Servers the plan itself skips (disabled in the registry) do not fail the step. */
function plannedSkip(plan: Plan, result: ServerResult): boolean {
  return result.status === 'skipped' && plan.entries.some(e => e.action === 'skip' && e.server === result.server)
}

function planned(plan: Plan, settings: Settings): ServerResult[] {
  return plan.entries.map(e =>
    e.action === 'skip'
      ? skippedResult(e.server, e.skipReason ?? 'skipped')
      : { server: e.server, status: 'planned' as const, deployedImage: settings.mode === 'deploy' ? settings.image || undefined : undefined, durationMs: 0, log: [] }
  )
}

async function execute(plan: Plan, settings: Settings): Promise<ServerResult[]> {
  const controller = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) return
    core.warning(`${signal} received: no new server starts; servers in progress finish or roll back, and their locks are released.`)
    controller.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // The last line of defence. Each server's code turns its own errors into that server's result
  // (ssh.ts guards every listener it gives ssh2), but a throw from a library callback nobody wraps
  // would otherwise end the process mid-fleet: no server would finish or roll back, every lock would
  // stay until its lease ran out, and no summary would be written. Which server it came from cannot
  // be known here, so nothing is recovered: it is logged and fails the step, and the server it hit
  // ends at the latest when its step times out, while the others go on.
  const onUncaught = (error: unknown) => {
    process.exitCode = core.ExitCode.Failure
    reportError('Internal error, a bug in the action or a library (the other servers go on; the step will fail)', error, core.error)
  }
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onUncaught)
  try {
    const ctx = createRunContext(settings, controller.signal, (server, state) => core.info(`[${server.name}] ${state}`))
    const work = plan.entries.filter(e => e.action !== 'skip').map(e => e.server)
    const deployments = await TenantDeployments.start(
      settings,
      work.map(s => s.tenant)
    )
    // every server's connection is closed when runFleet returns: the jump hosts' can go too
    const results = await runFleet(work, ctx, { onServerDone: logServer }).finally(() => ctx.close())
    const skipped = planned(plan, settings).filter(r => r.status === 'skipped')
    skipped.forEach(logServer)
    await deployments?.finish(results)
    return [...results, ...skipped]
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUncaught)
  }
}
