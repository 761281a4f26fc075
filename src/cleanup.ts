import * as core from '@actions/core'
import { releaseRunLocks, type LockRelease, type ReleaseOutcome } from './deploy/release.js'
import { createRunContext } from './deploy/run-context.js'
import { reportError } from './errors.js'
import { planFromInputs } from './plan.js'
import { stateDir } from './remote/commands.js'
import { serverTitle } from './report/report.js'
import { logQuoted, singleLine } from './untrusted.js'
import { readSettings } from './settings.js'

/** The post step connects with this bound at most: it must not keep a cancelled job waiting long. */
const CLEANUP_CONNECT_SECONDS = 10

const SAID: Record<ReleaseOutcome, string> = {
  released: "released this run's lock",
  'not-held': 'no lock of this run (already released, or none; another run’s lock is left alone)',
  unreachable: 'not reached',
  failed: 'could not release'
}

/**
 * The post step (action.yml `runs.post`, only when the job was cancelled): reads the inputs and the
 * registry as the deploy step did, and releases the deploy locks this run still holds on the servers
 * it selected. It changes nothing else and never fails the job: a lock it cannot release ends with
 * its lease, and a warning says so.
 */
export async function runCleanup(contextFor: typeof createRunContext = createRunContext): Promise<void> {
  // A throw from a library callback must not turn the cleanup of a cancelled job into a failure.
  const onUncaught = (error: unknown) => reportError("Internal error while releasing this run's deploy locks", error, core.warning)
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onUncaught)
  try {
    const settings = readSettings()
    if (settings.dryRun || settings.mode === 'status' || settings.mode === 'rotate-key') {
      core.info(`No deploy lock to release: ${settings.dryRun ? 'a dry run' : `mode ${settings.mode}`} takes none.`)
      return
    }
    const plan = planFromInputs(settings, () => undefined)
    const servers = plan.entries.filter(e => e.action !== 'skip').map(e => e.server)
    const ctx = contextFor({ ...settings, connectTimeout: Math.min(settings.connectTimeout, CLEANUP_CONNECT_SECONDS) }, new AbortController().signal)
    report(await releaseRunLocks(servers, ctx))
  } catch (error) {
    reportError("Could not release this run's deploy locks (a lock left behind ends with its lease)", error, core.warning)
  } finally {
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUncaught)
  }
}

function report(results: LockRelease[]): void {
  const count = (outcome: ReleaseOutcome) => results.filter(r => r.outcome === outcome).length
  const missed = count('unreachable') + count('failed')
  core.startGroup(
    `Deploy locks of the cancelled run on ${results.length} server${results.length === 1 ? '' : 's'}: ${count('released')} released, ${count('not-held')} not held${missed ? `, ${missed} not released` : ''}`
  )
  logQuoted(results.map(r => `${serverTitle(r)}: ${SAID[r.outcome]}${r.detail ? `: ${singleLine(r.detail)}` : ''}`))
  core.endGroup()
  for (const r of results.filter(r => r.outcome === 'unreachable' || r.outcome === 'failed')) {
    core.warning(
      `${r.outcome === 'unreachable' ? 'could not reach the server to release' : 'could not release'} this run's deploy lock (see the log group); it ends with its lease (the bound of the step the run was in, plus 35 s), ` +
        `or remove ${stateDir(r.server.path)}/lock by hand once no deploy runs there.`,
      { title: serverTitle(r) }
    )
  }
}
