/**
 * The post step's work on each server of a cancelled run: release the deploy lock the run still
 * holds, and nothing else. GitHub kills a cancelled step (SIGKILL) about 10 s after its SIGINT; a
 * server caught mid-step keeps that run's lock until its lease runs out (the step's whole remote
 * bound and slack), and the next deploy would wait for it or report the server `locked`. Only a lock
 * whose note carries this run's token is removed (see run-context.ts lockToken): never another run's.
 */
import pLimit from 'p-limit'
import * as commands from '../remote/commands.js'
import { ConnectError, type RemoteShell } from '../remote/ssh.js'
import type { Server } from '../registry/types.js'
import type { RunContext } from './run-context.js'

/** What the post step found: `not-held` is no lock, or another run's (both are left alone). */
export type ReleaseOutcome = 'released' | 'not-held' | 'unreachable' | 'failed'

export interface LockRelease {
  server: Server
  outcome: ReleaseOutcome
  /** Why the lock could not be released: our words, or the server's (untrusted) error line. */
  detail?: string
}

/** The release waits at most 10 s for the lock guard (commands.ts); more means the server is in trouble. */
export const RELEASE_STEP_SECONDS = 20

/** Releases this run's lock on every server, at most `max-parallel` at once; one result per server, in order. */
export async function releaseRunLocks(servers: Server[], ctx: Pick<RunContext, 'settings' | 'connect' | 'lockToken'>): Promise<LockRelease[]> {
  const limit = pLimit(ctx.settings.maxParallel)
  return Promise.all(servers.map(server => limit(() => releaseOne(server, ctx))))
}

async function releaseOne(server: Server, ctx: Pick<RunContext, 'connect' | 'lockToken'>): Promise<LockRelease> {
  let shell: RemoteShell
  try {
    shell = await ctx.connect(server, new AbortController().signal)
  } catch (error) {
    const refused = error instanceof ConnectError && error.kind !== 'network'
    return { server, outcome: refused ? 'failed' : 'unreachable', detail: errorText(error) }
  }
  try {
    const result = await shell.run(commands.releaseLock(server.path, ctx.lockToken), RELEASE_STEP_SECONDS)
    const facts = commands.parseFacts(result.stdout)
    const released = facts.get('released')?.at(-1)
    if (result.code === 0 && released === 'yes') return { server, outcome: 'released' }
    if (result.code === 0 && released === 'not-ours') return { server, outcome: 'not-held' }
    const why = facts.get('error')?.at(-1) ?? (result.stderr.trim().split('\n').at(-1) || `exit code ${result.code}`)
    return { server, outcome: 'failed', detail: `unlock failed: ${why}` }
  } catch (error) {
    // The connection broke or the step outlived its bound: whether the lock went is not known.
    return { server, outcome: 'unreachable', detail: errorText(error) }
  } finally {
    shell.close()
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
