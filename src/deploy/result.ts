import type { Server } from '../registry/types.js'

/** A server's outcome, in the operator's words (see DESIGN.md "Per-server status"). */
export type Status = 'deployed' | 'unchanged' | 'rolled-back' | 'failed' | 'unreachable' | 'locked' | 'skipped' | 'planned' | 'healthy' | 'unhealthy' | 'rotated'

/** Statuses that leave the step green. */
export const SUCCESS_STATUSES: readonly Status[] = ['deployed', 'unchanged', 'healthy', 'planned', 'rotated']

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

export function isSuccess(result: ServerResult): boolean {
  return SUCCESS_STATUSES.includes(result.status)
}
