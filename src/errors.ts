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
