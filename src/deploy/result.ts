import type { Server } from '../registry/types.js'

/** A server's outcome, in the operator's words (see DESIGN.md "Per-server status"). */
export type Status = 'deployed' | 'unchanged' | 'rolled-back' | 'failed' | 'unreachable' | 'locked' | 'skipped' | 'planned' | 'healthy' | 'unhealthy' | 'rotated'

/**
 * What each status means for the run, in one place: a success leaves the step green; a failure
 * counts against max-failures and the canaries, fails the step, and is annotated and detailed in
 * the summary; a skipped server is neither (it fails the step only when a cancel skipped it).
 */
const OUTCOME: Record<Status, 'success' | 'failure' | 'skipped'> = {
  deployed: 'success',
  unchanged: 'success',
  healthy: 'success',
  planned: 'success',
  rotated: 'success',
  'rolled-back': 'failure',
  failed: 'failure',
  unreachable: 'failure',
  locked: 'failure',
  unhealthy: 'failure',
  skipped: 'skipped'
}

export interface ServerResult {
  server: Server
  status: Status
  /** Image reference running before this run (from the server's `.env`). */
  previousImage?: string
  /** Image reference running after this run. */
  deployedImage?: string
  /** Local image IDs, for short digests in the summary. */
  previousImageId?: string
  deployedImageId?: string
  /**
   * The `.env` variables (tenant-env, the gateway token) this run changed and left so, by name only;
   * the image variable is not listed (the images say it). Unset when none, or after a rollback.
   */
  changedVariables?: string[]
  /** Last health check, e.g. `HTTP 200, gateway running`. */
  health?: string
  durationMs: number
  error?: string
  /** The step that failed and the last lines it printed. */
  failedStep?: string
  failedOutput?: string
  /** Read-only facts for `mode: status`. */
  lastDeploy?: string
  lockHolder?: string
  /** Things the operator should know although the server succeeded (shown as warnings). */
  warnings?: string[]
  /** Every step with its outcome, printed as one log group when the server finishes. */
  log: string[]
}

export function isSuccess(result: Pick<ServerResult, 'status'>): boolean {
  return OUTCOME[result.status] === 'success'
}

export function isFailure(result: Pick<ServerResult, 'status'>): boolean {
  return OUTCOME[result.status] === 'failure'
}
