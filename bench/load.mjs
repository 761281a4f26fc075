// Downtime probe, run inside one rig server's network namespace (bench.mjs starts it with
// `rig.sh exec sN -- node bench/load.mjs URL`): GET the gateway's health URL over and over, one
// request at a time, a fresh connection each, and record which ones fail. Bounded: it stops when its
// standard input closes, after MAX_SECONDS, or after MAX_REQUESTS, whichever comes first. Prints
// one JSON line: requests, failures, and the longest unanswered window (from the start of the first
// failed request to the start of the next answered one).
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

const url = process.argv[2] ?? 'http://127.0.0.1:18789/health'
if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error(`loopback URLs only: ${url}`)
const MAX_SECONDS = Number(process.argv[3] ?? 90)
const MAX_REQUESTS = 20000
const PAUSE_MS = 10
const TIMEOUT_MS = 1000

let stop = false
process.stdin.on('data', () => undefined)
process.stdin.on('end', () => (stop = true))
process.stdin.on('error', () => (stop = true))

function probe() {
  return new Promise(resolve => {
    const req = http.get(url, { agent: false, timeout: TIMEOUT_MS }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', d => (body += d))
      res.on('end', () => resolve({ ok: res.statusCode >= 200 && res.statusCode < 300, body: body.trim().slice(0, 20) }))
      res.on('error', () => resolve({ ok: false, body: '' }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ ok: false, body: '' }))
  })
}

const t0 = performance.now()
let requests = 0
let failures = 0
let windowStart // start of the first failed request of the current failing run
let longest = 0
let windows = 0
const bodies = []
while (!stop && requests < MAX_REQUESTS && performance.now() - t0 < MAX_SECONDS * 1000) {
  const at = performance.now()
  const { ok, body } = await probe()
  requests++
  if (ok) {
    if (windowStart !== undefined) {
      longest = Math.max(longest, at - windowStart)
      windows++
      windowStart = undefined
    }
    if (bodies.at(-1) !== body) bodies.push(body)
  } else {
    failures++
    windowStart ??= at
  }
  await sleep(PAUSE_MS)
}
const unfinished = windowStart !== undefined ? performance.now() - windowStart : 0
process.stdout.write(
  JSON.stringify({ requests, failures, longestMs: Math.round(Math.max(longest, unfinished)), windows, endedFailing: unfinished > 0, bodies, seconds: (performance.now() - t0) / 1000 }) + '\n'
)
