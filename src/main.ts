import * as core from '@actions/core'
import { UserError } from './errors.js'
import { readSettings } from './settings.js'

/** The whole action: inputs → registry → plan → per-server pipeline → report. */
export async function run(): Promise<void> {
  try {
    const settings = readSettings()
    core.info(`mode: ${settings.mode}${settings.dryRun ? ' (dry run)' : ''}`)
  } catch (error) {
    core.setFailed(describeError(error))
  }
}

function describeError(error: unknown): string {
  if (error instanceof UserError) return error.message
  if (error instanceof Error) return error.stack ?? error.message
  return String(error)
}
