import { logQuoted, MAX_BLOCK_CHARS, singleLine } from './untrusted.js'

/** An error in what the user gave us (inputs or registry). Reported as is, without a stack trace. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly problems: string[] = [message]
  ) {
    super(message)
    this.name = 'UserError'
  }
}

/**
 * Reports an error through `annotate` (core.error, core.warning, core.setFailed), after `what` when
 * given. A UserError is our own words and is shown as it is. Anything else is a bug or a library's
 * throw whose message may quote a server (ssh2 and Node put what a peer sent into their errors), so it
 * is server text (DESIGN.md "Trust"): its name and message go on one line, bounded, and its stack
 * to the log inside a stop-commands block. Never throws: the last-resort handlers call it.
 */
export function reportError(what: string | undefined, error: unknown, annotate: (message: string) => void): void {
  const prefix = what ? `${what}: ` : ''
  if (error instanceof UserError) return annotate(`${prefix}${error.message}`)
  let message = 'an error that cannot be shown as text'
  let stack: string | undefined
  try {
    message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : undefined
  } catch {
    // (an object whose toString, name, message or stack throws)
  }
  annotate(`${prefix}${singleLine(message)}`)
  // (only the end of a huge stack is kept: its frames, after a message the annotation already has)
  if (stack) logQuoted([`${prefix}where it was thrown:`, stack.length > 2 * MAX_BLOCK_CHARS ? stack.slice(-2 * MAX_BLOCK_CHARS) : stack])
}

/** A heading and its list of problems, as every input and registry error prints them. */
export function formatProblems(heading: string, problems: string[]): string {
  return `${heading} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` + problems.map(p => `  - ${p}`).join('\n')
}
