/** Resolves once everything written to `stream` so far is handed to the OS (or after `capMs`). */
function flushed(stream: NodeJS.WriteStream, capMs = 5000): Promise<void> {
  return new Promise(resolve => {
    const cap = setTimeout(resolve, capMs)
    stream.write('', () => {
      clearTimeout(cap)
      resolve()
    })
  })
}

/**
 * Ends the process, with the exit code core.setFailed chose, once its output is out. A socket to a
 * server that vanished, or a timer some library left behind, must not keep the runner's step alive.
 */
export async function endProcess(): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)])
  process.exit()
}
