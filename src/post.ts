// The action's post step (action.yml runs.post): releases the deploy locks of a cancelled run.
// ssh2 (through node-ssh) reads __dirname while loading; in the ESM bundle it must exist first.
import './runtime-globals.js'
import { runCleanup } from './cleanup.js'
import { endProcess } from './end-process.js'

await runCleanup()
await endProcess()
