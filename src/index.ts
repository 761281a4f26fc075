// ssh2 (through node-ssh) reads __dirname while loading; in the ESM bundle it must exist first.
import './runtime-globals.js'
import { run } from './main.js'

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

await run()
// The summary and outputs are written: end now, with the code core.setFailed chose. A socket to a
// server that vanished, or a timer some library left behind, must not keep the runner's step alive.
await Promise.all([flushed(process.stdout), flushed(process.stderr)])
process.exit()
