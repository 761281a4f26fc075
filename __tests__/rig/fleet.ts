// Helpers for end-to-end tests against the rig (see rig.sh): read the fleet, run rig commands,
// look inside servers, and run the bundled action the way the GitHub runner does.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Repository root (this file lives in __tests__/rig/). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const rigScript = join(repoRoot, '__tests__', 'rig', 'rig.sh')
export const rigDir = (process.env.RIG_DIR ?? '/tmp/openclaw-rig').replace(/\/+$/, '')

export interface FleetServer {
  name: string
  host: string
  port: number
  user: string
  /** The compose project folder (docker-compose.yml and .env). */
  path: string
  /** `SHA256:…` fingerprint of the server's ed25519 host key. */
  hostKey: string
  /**
   * Fingerprint of each host key the server holds, by known_hosts key type: `ssh-ed25519` on every
   * server; s1 and s2 also hold `ecdsa-sha2-nistp256` and `ssh-rsa` keys. known_hosts lists them all.
   */
  hostKeys: Record<string, string>
  netns: string
  veth: string
  /** The deploy user's home as this server sees it (each server has its own). */
  home: string
  /** Original docker-compose.yml, .env and authorized_keys of this server (reset restores them). */
  baselineDir: string
  /** `unix://…` socket of the server's own dockerd; null with `up --no-docker`. */
  dockerHost: string | null
  docker: boolean
}

export interface Fleet {
  rigDir: string
  /** `10.200.0.1:5000`, the local registry every test image comes from. */
  registry: string
  docker: boolean
  /**
   * v1 and v2 are healthy (GET /health answers `v1` / `v2`); broken starts but /health is 404; crash
   * exits 1 at start-up (with `restart: unless-stopped`, a restart loop).
   */
  images: { v1: string; v2: string; broken: string; crash: string }
  /** The registry that needs a login (TLS, the rig's own CA): `image` is only there. */
  privateRegistry: { address: string; username: string; passwordFile: string; caFile: string; image: string }
  privateKeyFile: string
  publicKeyFile: string
  knownHostsFile: string
  servers: FleetServer[]
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * Connections server NAME's sshd has logged so far (each logs `Connection from` as it arrives, even
 * one that never logs in; the rig's own port probes in `up` and `reset` do too). Counted, not the
 * log's size: sshd may still log the end of an earlier connection.
 */
export function sshdConnections(fleet: Fleet, name: string): number {
  return (readFileSync(join(fleet.rigDir, name, 'sshd.log'), 'utf8').match(/Connection from /g) ?? []).length
}

/** The rig's fleet.json (throws when the rig is not up). */
export function readFleet(): Fleet {
  const file = join(rigDir, 'fleet.json')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    throw new Error(`${file} not found: is the rig up? (bash ${rigScript} up 8)`)
  }
  return JSON.parse(text) as Fleet
}

/** One server of the fleet by name. */
export function server(fleet: Fleet, name: string): FleetServer {
  const found = fleet.servers.find(s => s.name === name)
  if (!found) throw new Error(`no server ${name} in the rig (${fleet.servers.map(s => s.name).join(', ')})`)
  return found
}

/** Run a command, collect its output; never rejects on a non-zero exit (only if it cannot start). */
export function run(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string; inherit?: boolean } = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      if (opts.inherit) process.stderr.write(d)
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          stderr += `\n[killed after ${opts.timeoutMs} ms]`
          child.kill('SIGKILL')
        }, opts.timeoutMs)
      : undefined
    child.on('error', err => {
      if (timer) clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolvePromise({ code: code ?? (signal ? 128 : 1), stdout, stderr })
    })
  })
}

function rigEnv(): NodeJS.ProcessEnv {
  return { ...process.env, RIG_DIR: rigDir }
}

/** Run `rig.sh ARGS…`; resolves with its stdout, rejects with its stderr when it fails. */
export async function rig(...args: string[]): Promise<string> {
  const r = await run('bash', [rigScript, ...args], { env: rigEnv() })
  if (r.code !== 0) {
    throw new Error(`rig.sh ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
  }
  return r.stdout
}

/** Like rig(), with rig.sh's progress (stderr) shown as it runs; for global setup/teardown. */
export async function rigVerbose(...args: string[]): Promise<ExecResult> {
  return run('bash', [rigScript, ...args], { env: rigEnv(), inherit: true })
}

/**
 * Run a bash command as root inside server NAME: its network and mount namespaces, cwd = its
 * project folder, DOCKER_HOST = its daemon. Resolves with the exit code (does not reject on failure).
 */
export function serverExec(name: string, command: string, timeoutMs = 120_000): Promise<ExecResult> {
  return run('bash', [rigScript, 'exec', name, '--', 'bash', '-c', command], { env: rigEnv(), timeoutMs })
}

/** Body of GET /health on the server's side (trimmed), or undefined when it is not 2xx / not answering. */
export async function healthOf(name: string): Promise<string | undefined> {
  const r = await serverExec(name, 'curl -fsS --max-time 3 http://127.0.0.1:18789/health', 15_000)
  return r.code === 0 ? r.stdout.trim() : undefined
}

/** The deploy user's ~/.ssh/authorized_keys on the server, the file its sshd reads (AuthorizedKeysFile %h/.ssh/authorized_keys). */
export function authorizedKeysFile(fleetServer: FleetServer): string {
  return join(fleetServer.home, '.ssh', 'authorized_keys')
}

/** The server's .env as it is now. */
export function envOf(fleetServer: FleetServer): string {
  return readFileSync(join(fleetServer.path, '.env'), 'utf8')
}

/** The server's .env as the rig first wrote it (what `reset` restores). */
export function baselineEnvOf(fleetServer: FleetServer): string {
  return readFileSync(join(fleetServer.baselineDir, '.env'), 'utf8')
}

/** `ssh-private-key` and `known-hosts` inputs for the action, from the rig's files. */
export function actionKeyInputs(fleet: Fleet): { 'ssh-private-key': string; 'known-hosts': string } {
  return {
    'ssh-private-key': readFileSync(fleet.privateKeyFile, 'utf8'),
    'known-hosts': readFileSync(fleet.knownHostsFile, 'utf8')
  }
}

/** The rig's known_hosts lines for the server, of one key type or all (newline-terminated text). */
export function knownHostsLines(fleet: Fleet, fleetServer: FleetServer, keyType?: string): string {
  const lines = readFileSync(fleet.knownHostsFile, 'utf8')
    .split('\n')
    .filter(line => {
      const [host, type] = line.split(' ')
      return host === fleetServer.host && (keyType === undefined || type === keyType)
    })
  if (lines.length === 0) throw new Error(`the rig's known_hosts has no ${keyType ?? ''} key for ${fleetServer.name}`)
  return lines.join('\n') + '\n'
}

/** Scratch folder inside the rig dir (removed by `rig.sh down`), or the system temp dir without a rig. */
export function scratchDir(prefix: string): string {
  const base = join(rigDir, 'tmp')
  try {
    mkdirSync(base, { recursive: true })
    return mkdtempSync(join(base, `${prefix}-`))
  } catch {
    return mkdtempSync(join(tmpdir(), `ocrig-${prefix}-`))
  }
}

export type RegistryEntry = Record<string, unknown>
export type RegistryExtra =
  RegistryEntry | ((server: FleetServer, index: number) => RegistryEntry) | { perServer?: (server: FleetServer, index: number) => RegistryEntry; top?: Record<string, unknown> }

/**
 * Write a server registry (production.json format) for the given rig servers to a temp file and
 * return its path. Each entry: name, host, tenant (`tenant-<name>`), port, user, path, hostKey.
 * `extra` is merged into every entry (an object, or a function of the server), or given as
 * `{ perServer, top }` to also add top-level fields such as `defaults`. A key set to undefined is removed.
 */
export function writeRegistry(fleet: Fleet, servers: Array<string | FleetServer>, extra?: RegistryExtra): string {
  let perServer: ((s: FleetServer, i: number) => RegistryEntry) | undefined
  let top: Record<string, unknown> = {}
  if (typeof extra === 'function') perServer = extra
  else if (extra && ('perServer' in extra || 'top' in extra)) {
    const e = extra as { perServer?: (s: FleetServer, i: number) => RegistryEntry; top?: Record<string, unknown> }
    perServer = e.perServer
    top = e.top ?? {}
  } else if (extra) perServer = () => extra as RegistryEntry

  const entries = servers.map((s, i) => {
    const fs = typeof s === 'string' ? server(fleet, s) : s
    const entry: RegistryEntry = {
      name: fs.name,
      host: fs.host,
      tenant: `tenant-${fs.name}`,
      port: fs.port,
      user: fs.user,
      path: fs.path,
      hostKey: fs.hostKey,
      ...(perServer ? perServer(fs, i) : {})
    }
    for (const k of Object.keys(entry)) if (entry[k] === undefined) delete entry[k]
    return entry
  })
  const file = join(scratchDir('registry'), 'servers.json')
  writeFileSync(file, JSON.stringify({ ...top, servers: entries }, null, 2) + '\n')
  return file
}

export interface ActionRun {
  /** Exit code (null when ended by a signal). */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Outputs the action set (parsed from the GITHUB_OUTPUT file). */
  outputs: Record<string, string>
  /** What the action wrote to GITHUB_STEP_SUMMARY. */
  summary: string
  durationMs: number
  timedOut: boolean
  /** The workspace the action ran in (cwd, GITHUB_WORKSPACE). */
  workspace: string
}

/** One server's entry of the `results` output. */
export interface ResultRow {
  name: string
  tenant: string
  status: string
  previousImage: string | null
  deployedImage: string | null
  error: string | null
  changedVariables?: string[]
  jump?: string | null
}

/** The `results` output of a run (empty when the run set none, e.g. refused inputs). */
export const resultsOf = (run: ActionRun): ResultRow[] => JSON.parse(run.outputs.results ?? '[]') as ResultRow[]
/** Each server's status, by name. */
export const statusOf = (run: ActionRun): Record<string, string> => Object.fromEntries(resultsOf(run).map(r => [r.name, r.status]))

export interface RunActionOptions {
  /** Extra environment (overrides the runner-like defaults; undefined removes a variable). */
  env?: Record<string, string | undefined>
  /** Kill the action (SIGKILL) after this long; default 240 s. */
  timeoutMs?: number
  /** Node binary; default $ACTION_NODE, else the node running the tests. */
  node?: string
  /** Script to run instead of dist/index.js (relative to the repository root, or absolute). */
  entry?: string
  /** Fill inputs not given from action.yml's defaults, as the runner does (default true). */
  applyDefaults?: boolean
  /** Workspace folder (cwd); default a fresh one. */
  workspace?: string
  /** Called once the action is spawned, e.g. to send it SIGINT when some output appears. */
  onSpawn?: (child: ChildProcess) => void
}

/** What `${{ github.token }}` becomes in runAction (no GitHub API is reachable from tests anyway). */
export const FAKE_GITHUB_TOKEN = 'ghs_openclawRigFakeToken0000000000000000'

/**
 * Record a running action's PID (and start time) in the rig's pid folder, so that `rig.sh down`
 * ends a run that outlived its test before the rig's network (and its guard route) goes away.
 */
function recordPid(pid: number | undefined): string | undefined {
  if (!pid) return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    const file = join(rigDir, 'pids', `action-${pid}`)
    writeFileSync(file, `${pid} ${start}\n`)
    return file
  } catch {
    return undefined // no rig up: nothing to record
  }
}

function forgetPid(file: string | undefined): void {
  if (file) rmSync(file, { force: true })
}

/** Defaults of action.yml's inputs (a small reader for that file's plain `inputs:` block). */
export function actionDefaults(file = join(repoRoot, 'action.yml')): Record<string, string> {
  const defaults: Record<string, string> = {}
  let inInputs = false
  let current: string | undefined
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^\S/.test(line)) {
      inInputs = /^inputs:\s*$/.test(line)
      current = undefined
      continue
    }
    if (!inInputs) continue
    const name = /^ {2}([A-Za-z0-9_-]+):\s*$/.exec(line)
    if (name) {
      current = name[1]
      continue
    }
    const def = /^ {4}default:\s*(.*?)\s*$/.exec(line)
    if (def && current) {
      let v = def[1]
      if (/^'.*'$/.test(v)) v = v.slice(1, -1).replace(/''/g, "'")
      else if (/^".*"$/.test(v)) v = JSON.parse(v) as string
      // the runner evaluates expressions in defaults: the job's token is a fake one here
      defaults[current] = v.replace(/\$\{\{\s*github\.token\s*\}\}/g, FAKE_GITHUB_TOKEN).replace(/\$\{\{[^}]*\}\}/g, '')
    }
  }
  return defaults
}

/** Parse a GITHUB_OUTPUT / GITHUB_ENV file: `name<<DELIMITER` heredocs and plain `name=value` lines. */
export function parseCommandFile(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (!line) continue
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line)
    if (heredoc) {
      const [, key, delimiter] = heredoc
      const value: string[] = []
      i++
      while (i < lines.length && lines[i] !== delimiter) value.push(lines[i++])
      if (i >= lines.length) throw new Error(`unterminated ${key}<<${delimiter} in command file`)
      out[key] = value.join('\n')
      continue
    }
    const eq = line.indexOf('=')
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1)
    else throw new Error(`unparsable command file line: ${line}`)
  }
  return out
}

/** How many runs runAction started: part of each run's GITHUB_RUN_ID. */
let runsStarted = 0

/**
 * Run the bundled action (`node dist/index.js`) as the GitHub runner does: inputs as INPUT_<NAME>
 * (uppercased, hyphens kept), fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY / GITHUB_ENV / GITHUB_PATH /
 * GITHUB_STATE files, a workspace as cwd, RUNNER_TEMP, GITHUB_RUN_ID and friends. The GitHub API
 * URL points at a closed loopback port so nothing can leave the machine unless a test says so.
 */
export async function runAction(inputs: Record<string, string>, opts: RunActionOptions = {}): Promise<ActionRun> {
  const dir = scratchDir('run')
  const workspace = opts.workspace ?? join(dir, 'workspace')
  const runnerTemp = join(dir, 'runner-temp')
  for (const d of [workspace, runnerTemp]) mkdirSync(d, { recursive: true })
  const files = {
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STEP_SUMMARY: join(dir, 'step-summary.md'),
    GITHUB_ENV: join(dir, 'env'),
    GITHUB_PATH: join(dir, 'path'),
    GITHUB_STATE: join(dir, 'state'),
    GITHUB_EVENT_PATH: join(dir, 'event.json')
  }
  for (const f of Object.values(files)) writeFileSync(f, '')
  writeFileSync(files.GITHUB_EVENT_PATH, JSON.stringify({ inputs: {} }) + '\n')

  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    // nothing from the test process's own GitHub context, inputs or Node options leaks in
    if (/^(INPUT_|GITHUB_|RUNNER_|ACTIONS_|STATE_)/.test(k) || k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  // Unique per call, also for two runs started in the same millisecond: the lock token is derived from it.
  const runId = `${Date.now()}${String(++runsStarted % 1000).padStart(3, '0')}`
  Object.assign(env, {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: workspace,
    GITHUB_REPOSITORY: 'acme/openclaw-infra',
    GITHUB_REPOSITORY_OWNER: 'acme',
    GITHUB_RUN_ID: runId,
    GITHUB_RUN_NUMBER: '1',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_JOB: 'deploy',
    GITHUB_WORKFLOW: 'Deploy OpenClaw',
    GITHUB_ACTION: 'deploy',
    GITHUB_ACTOR: 'octo-tester',
    GITHUB_EVENT_NAME: 'workflow_dispatch',
    GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
    GITHUB_REF: 'refs/heads/PRD',
    GITHUB_REF_NAME: 'PRD',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_API_URL: 'http://127.0.0.1:9',
    GITHUB_GRAPHQL_URL: 'http://127.0.0.1:9/graphql',
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_NAME: 'openclaw-rig',
    RUNNER_TEMP: runnerTemp,
    RUNNER_TOOL_CACHE: join(dir, 'tool-cache'),
    ...files
  })
  const all = { ...(opts.applyDefaults === false ? {} : actionDefaults()), ...inputs }
  for (const [name, value] of Object.entries(all)) env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }

  const node = opts.node ?? process.env.ACTION_NODE ?? process.execPath
  const entry = resolve(repoRoot, opts.entry ?? join('dist', 'index.js'))
  const timeoutMs = opts.timeoutMs ?? 240_000
  const started = Date.now()
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node, [entry], { env, cwd: workspace, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    const pidFile = recordPid(child.pid)
    child.on('error', err => {
      clearTimeout(timer)
      forgetPid(pidFile)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      forgetPid(pidFile)
      // (never throw here: a run that outlives its test may find the rig, and these files, gone)
      let outputs: Record<string, string> = {}
      let summary = ''
      try {
        outputs = parseCommandFile(readFileSync(files.GITHUB_OUTPUT, 'utf8'))
        summary = readFileSync(files.GITHUB_STEP_SUMMARY, 'utf8')
      } catch (err) {
        stderr += `\n[runAction] ${(err as Error).message}`
      }
      resolvePromise({
        code,
        signal,
        stdout,
        stderr,
        outputs,
        summary,
        durationMs: Date.now() - started,
        timedOut,
        workspace
      })
    })
    opts.onSpawn?.(child)
  })
}
