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

/** An error as the log shows it: a UserError's message as is, anything else with its stack (a bug). */
export function describeError(error: unknown): string {
  if (error instanceof UserError) return error.message
  if (error instanceof Error) return error.stack ?? error.message
  return String(error)
}

/** A heading and its list of problems, as every input and registry error prints them. */
export function formatProblems(heading: string, problems: string[]): string {
  return `${heading} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` + problems.map(p => `  - ${p}`).join('\n')
}
