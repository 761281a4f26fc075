// ssh2 (through node-ssh) reads __dirname while loading; in the ESM bundle it must exist first.
import './runtime-globals.js'
import { endProcess } from './end-process.js'
import { run } from './main.js'

await run()
// The summary and outputs are written: end now.
await endProcess()
