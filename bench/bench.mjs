// The benchmark harness (started by bench/run.sh under the rig lock; see that file for usage).
// Brings up the rig, runs our bundled action and the tools operators would otherwise use on the same
// servers doing the same remote work, several times, and prints medians and ratios as Markdown.
//
// Fairness: the other tools run the very scripts our action runs on a server. They are taken from
// src/remote/commands.ts (compiled to a scratch folder at start), so the remote work is the same
// byte for byte; only the orchestration differs (one `ssh` per server running the steps in a row,
// against our one SSH connection per server with one channel per step). Table 1b adds what an
// operator runs without us, with its own commands: the fleet-status one-liner of issue 14 and a bare
// `docker ps` as the floor of any SSH + Docker round trip.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { clearTimeout, setTimeout } from 'node:timers'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const RIG = join(ROOT, '__tests__', 'rig', 'rig.sh')
const RIG_DIR = (process.env.RIG_DIR ?? '/tmp/openclaw-rig').replace(/\/+$/, '')
const NODE = process.env.BENCH_NODE ?? process.execPath
const ACTION = resolve(ROOT, process.env.BENCH_ACTION ?? 'dist/index.js')
/** BENCH_VARIANTS="label=path/to/index.js,…": other builds (e.g. patched copies) measured beside ours in 1 and 3. */
const VARIANTS = (process.env.BENCH_VARIANTS ?? '')
  .split(',')
  .filter(Boolean)
  .map(v => {
    const [label, file] = v.split('=')
    return { label, file: resolve(file) }
  })
/** Every server's project as seen by its deploy user (a link in each server's own home). */
const PROJECT = '/home/deploy/openclaw'
const HEALTH_URL = 'http://127.0.0.1:18789/health'
/** The key exchange our SSH library negotiates with sshd, for a like-for-like OpenSSH run. */
const SAME_KEX = ['-o', 'KexAlgorithms=curve25519-sha256']

// ---------------------------------------------------------------------------------------------
// options

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const onlyArg = argv.find(a => a.startsWith('--only='))
const only = new Set(onlyArg ? onlyArg.slice('--only='.length).split(',') : ['status', 'scale', 'deploy', 'downtime'])
const list = (v, d) => (v ? v.split(/[ ,]+/).filter(Boolean).map(Number) : d)
const REPS = Number(process.env.BENCH_REPS ?? (quick ? 1 : 3))
const STATUS_SIZES = list(process.env.BENCH_STATUS_SIZES, quick ? [10, 20] : [10, 20, 50])
const DEPLOY_SIZES = list(process.env.BENCH_DEPLOY_SIZES, quick ? [10] : [10, 20])
/** Table 1b: status on sshd + dockerd servers, ours against the operator's own status script. */
const DOCKER_STATUS_SIZES = list(process.env.BENCH_DOCKER_STATUS_SIZES, quick ? [10, 20] : [10, 20, 50])
const SCALE = Number(process.env.BENCH_SCALE ?? 1000)
const SCALE_PARALLEL = Number(process.env.BENCH_SCALE_PARALLEL ?? 100)
/** BENCH_SKIP="pssh,ansible,docker-status": leave out those contenders (for quicker comparisons). */
const SKIP = new Set((process.env.BENCH_SKIP ?? '').split(',').filter(Boolean))
const skipped = { median: undefined }
const OUT = process.env.BENCH_OUT ?? join(ROOT, 'bench', 'results', 'latest.md')

const work = mkdtempSync(join(os.tmpdir(), 'openclaw-bench-'))
const log = (...a) => process.stderr.write(`[bench] ${a.join(' ')}\n`)

// ---------------------------------------------------------------------------------------------
// processes

/** Runs a command; resolves with code, output and wall time. Never rejects on a non-zero exit. */
function run(cmd, args, { env = process.env, input, timeoutMs = 600_000, cwd } = {}) {
  return new Promise((done, fail) => {
    const t0 = performance.now()
    const child = spawn(cmd, args, { env, cwd, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', d => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', d => (stderr += d))
    if (input !== undefined) child.stdin.end(input)
    const timer = setTimeout(() => {
      stderr += `\n[bench] killed after ${timeoutMs} ms`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', error => {
      clearTimeout(timer)
      fail(error)
    })
    child.on('close', code => {
      clearTimeout(timer)
      done({ code: code ?? 128, stdout, stderr, ms: performance.now() - t0 })
    })
  })
}

async function rig(...args) {
  const r = await run('bash', [RIG, ...args], { env: { ...process.env, RIG_DIR } })
  if (r.code !== 0) throw new Error(`rig.sh ${args.join(' ')} failed (${r.code}): ${r.stderr.trim().split('\n').slice(-8).join('\n')}`)
  return r
}

const readFleet = () => JSON.parse(readFileSync(join(RIG_DIR, 'fleet.json'), 'utf8'))
const sshdPid = name => readFileSync(join(RIG_DIR, 'pids', `${name}.sshd`), 'utf8').split(' ')[0]

// ---------------------------------------------------------------------------------------------
// the remote work, from our own source

let commands
let quote
async function loadCommands() {
  const out = join(work, 'commands')
  const r = await run(join(ROOT, 'node_modules', '.bin', 'tsc'), [
    '--ignoreConfig',
    '--outDir',
    out,
    '--rootDir',
    join(ROOT, 'src', 'remote'),
    '--module',
    'nodenext',
    '--moduleResolution',
    'nodenext',
    '--target',
    'es2022',
    '--skipLibCheck',
    '--types',
    'node',
    join(ROOT, 'src', 'remote', 'commands.ts')
  ])
  if (r.code !== 0) throw new Error(`compiling src/remote/commands.ts failed: ${r.stdout}${r.stderr}`)
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n')
  commands = await import(join(out, 'commands.js'))
  quote = (await import(join(out, 'shell.js'))).quote
}

/** What `mode: status` runs on a server (preflight, read-state, one health probe in one command), as one command line. */
function statusCommand() {
  return commands.renderCommand(commands.statusProbe(PROJECT, 'OPENCLAW_IMAGE', HEALTH_URL, []), 640)
}

/**
 * Our deploy's step commands, built by src/remote/commands.ts with placeholders (`@name@`) where a
 * value is known only on the server (the running image, the pulled image's ID, …). The other tools'
 * scripts fill the placeholders in from their own variables, so the argument lists always match the
 * step scripts, whatever the builders' signatures become. (Our action also renews its lock lease and
 * takes the switch lock around steps; the other tools' scripts do not: that is our safety's cost.)
 * `holder` is the lock note (it carries `token=<token>`); `token` is the bare value unlock looks for.
 */
function deploySteps(image, holder, token) {
  const c = commands
  return {
    lock: [90, c.takeLock(PROJECT, holder, 60, 600)],
    preflight: [600, c.preflight(PROJECT, 'OPENCLAW_IMAGE')],
    pull: [600, c.pullImage(image)],
    record: [600, c.recordRollback(PROJECT, 'openclaw-rollback:bench', { image: '@current@', imageId: '@running@' }, '@target@', token)],
    'write-env': [600, c.setEnvVariables(PROJECT, { OPENCLAW_IMAGE: image }, token)],
    // what our deploy restarts on these servers: the gateway that runs (see README, What a deploy restarts)
    up: [600, c.composeUp(PROJECT, ['openclaw-gateway'], 'OPENCLAW_IMAGE')],
    health: [90, c.healthCheck(PROJECT, HEALTH_URL, 60, [], true)],
    prune: [600, c.pruneImages(PROJECT, '', ['@target@', '@running@'])],
    history: [600, c.appendHistory(PROJECT, `@now@\tdeployed\t@current@ -> ${image}\tbench`)],
    unlock: [30, c.releaseLock(PROJECT, token)]
  }
}

/** Fills in `@name@` placeholders with `fill(name)`; the parts between go through `literal`. */
function fillIn(value, fill, literal) {
  if (typeof value !== 'string') throw new Error(`a step argument is ${value}: a builder in src/remote/commands.ts takes an argument deploySteps does not pass`)
  return value
    .split(/(@[a-z]+@)/)
    .map(part => (/^@[a-z]+@$/.test(part) ? fill(part.slice(1, -1)) : part ? literal(part) : ''))
    .join('')
}

/**
 * The steps of our deploy (lock, preflight, pull, record, switch .env, compose up, health check,
 * prune, history, unlock) as one bash script for the other tools, using our step scripts with the
 * same `timeout … bash -c SCRIPT NAME ARGS` wrapping. Arguments: IMAGE HOLDER TOKEN.
 */
function deployScript(image, holder, token) {
  const q = quote
  const steps = deploySteps(image, holder, token)
  const arg = a => fillIn(a, name => `"$${name}"`, q) || "''"
  const call = name => {
    const [limit, command] = steps[name]
    return `step ${name} ${limit} ${q(command.script)} ${command.args.map(arg).join(' ')}`
  }
  const [, unlock] = steps.unlock
  return `set -u
step() { # NAME TIMEOUT SCRIPT ARGS...: output in $out; a failure unlocks and ends the deploy
  local name=$1 limit=$2 script=$3
  shift 3
  if ! out=$(timeout -k 5 "$limit" bash -c "$script" "openclaw-$name" "$@"); then
    printf 'failed=%s: %s\\n' "$name" "$(printf '%s' "$out" | tail -n 3 | tr '\\n' ' ')"
    [ "$name" = lock ] || timeout -k 5 30 bash -c ${q(unlock.script)} openclaw-unlock ${unlock.args.map(q).join(' ')} >/dev/null
    exit 1
  fi
}
fact() { printf '%s\\n' "$out" | sed -n "s/^$1=//p" | tail -n 1; }
${call('lock')}
${call('preflight')}
current=$(fact image_var)
running=$(printf '%s\\n' "$out" | sed -n 's/^container=[^|]*|[^|]*|\\([^|]*\\)|.*/\\1/p' | head -n 1)
${call('pull')}
target=$(fact image_id)
${call('record')}
printf '%s' ${q(steps['write-env'][1].stdin)} |
  timeout -k 5 600 bash -c ${q(steps['write-env'][1].script)} openclaw-write-env ${steps['write-env'][1].args.map(q).join(' ')} >/dev/null || { echo failed=write-env; exit 1; }
${call('up')}
${call('health')}
${call('prune')}
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
${call('history')}
${call('unlock')}
echo deployed=yes
`
}

// ---------------------------------------------------------------------------------------------
// contenders

let fleet
let sshOpts = []
const variantRows = []
function setupClients() {
  fleet = readFleet()
  sshOpts = [
    '-F',
    '/dev/null',
    '-i',
    fleet.privateKeyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${fleet.knownHostsFile}`,
    '-o',
    'ConnectTimeout=20',
    '-o',
    'ControlMaster=no',
    '-l',
    'deploy'
  ]
  // our registry: every rig server, the project through its home link
  const servers = fleet.servers.map((s, i) => ({ name: s.name, host: s.host, tenant: `t${i % 5}`, port: 22, user: s.user, path: PROJECT, hostKey: s.hostKey }))
  writeFileSync(join(work, 'servers.json'), JSON.stringify({ servers }, null, 2) + '\n')
}
const hostsOf = n => fleet.servers.slice(0, n).map(s => s.host)
const namesOf = n => fleet.servers.slice(0, n).map(s => s.name)

function actionDefaults() {
  const out = {}
  let inInputs = false
  let current
  for (const line of readFileSync(join(ROOT, 'action.yml'), 'utf8').split('\n')) {
    if (/^\S/.test(line)) {
      inInputs = /^inputs:\s*$/.test(line)
      continue
    }
    const name = inInputs && /^ {2}([a-z-]+):\s*$/.exec(line)
    if (name) current = name[1]
    const def = inInputs && /^ {4}default:\s*(.*?)\s*$/.exec(line)
    if (def && current) out[current] = def[1].replace(/^'(.*)'$/, '$1').replace(/\$\{\{[^}]*\}\}/g, 'ghs_benchFakeToken')
  }
  return out
}

/** Environment for our action as the runner gives it (inputs with action.yml's defaults). */
function actionEnv(inputs) {
  const dir = mkdtempSync(join(work, 'run-'))
  const files = { GITHUB_OUTPUT: join(dir, 'output'), GITHUB_STEP_SUMMARY: join(dir, 'summary'), GITHUB_ENV: join(dir, 'env'), GITHUB_PATH: join(dir, 'path'), GITHUB_STATE: join(dir, 'state') }
  for (const f of Object.values(files)) writeFileSync(f, '')
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(INPUT_|GITHUB_|RUNNER_|ACTIONS_)/.test(k) && k !== 'NODE_OPTIONS') env[k] = v
  Object.assign(env, files, {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: dir,
    GITHUB_REPOSITORY: 'acme/openclaw-infra',
    GITHUB_RUN_ID: '1',
    GITHUB_ACTOR: 'bench',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_API_URL: 'http://127.0.0.1:9',
    RUNNER_TEMP: dir
  })
  const all = {
    ...actionDefaults(),
    'servers-file': join(work, 'servers.json'),
    'ssh-private-key': readFileSync(fleet.privateKeyFile, 'utf8'),
    'known-hosts': readFileSync(fleet.knownHostsFile, 'utf8'),
    ...inputs
  }
  for (const [k, v] of Object.entries(all)) env[`INPUT_${k.toUpperCase()}`] = String(v)
  return { env, dir, output: files.GITHUB_OUTPUT }
}

function resultsOf(outputFile) {
  const m = /^results<<(\S+)\n([\s\S]*?)\n\1$/m.exec(readFileSync(outputFile, 'utf8'))
  return m ? JSON.parse(m[2]) : []
}

/** Our action; `ok` lists the statuses every server must end with. Returns wall seconds and the results. */
async function ours(n, inputs, ok, { timeWrap = false, exitCode = 0, action = ACTION } = {}) {
  const { env, dir, output } = actionEnv({ servers: namesOf(n).join(','), 'max-parallel': n, ...inputs })
  const timeFile = join(dir, 'time')
  const nodeArgs = [...(process.env.BENCH_ACTION_NODE_ARGS ?? '').split(' ').filter(Boolean), action]
  const [cmd, args] = timeWrap ? ['/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, NODE, ...nodeArgs]] : [NODE, nodeArgs]
  const r = await run(cmd, args, { env, cwd: dir })
  const results = resultsOf(output)
  const bad = results.filter(x => !ok.includes(x.status))
  const error =
    r.code !== exitCode || results.length !== n || bad.length
      ? `exit ${r.code}; ${results.length} results; not ${ok}: ${
          bad
            .slice(0, 5)
            .map(x => `${x.name} ${x.status} ${x.error ?? ''}`)
            .join('; ') ||
          r.stdout
            .split('\n')
            .filter(l => /::error/.test(l))
            .slice(0, 3)
            .join(' ')
        }`
      : undefined
  const time = timeWrap ? readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number) : undefined
  return { seconds: r.ms / 1000, results, error, badCount: bad.length + Math.max(0, n - results.length), time, log: r.stdout }
}

const count = (text, word) => text.split('\n').filter(l => l.includes(word)).length

/** `xargs -P N ssh` running one command on each of the first N servers. */
async function xargsSsh(n, command, expect, { parallel = n, timeWrap = false, extra = [] } = {}) {
  const script = 'xargs -P "$1" -I{} ssh "${@:3}" {} "$2"'
  const timeFile = join(work, 'xargs.time')
  const args = ['-c', script, 'xargs-ssh', String(parallel), command, ...sshOpts, ...extra]
  const r = timeWrap
    ? await run('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, 'bash', ...args], { input: hostsOf(n).join('\n') + '\n' })
    : await run('bash', args, { input: hostsOf(n).join('\n') + '\n' })
  const good = count(r.stdout, expect)
  const time = timeWrap ? readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number) : undefined
  const error = r.code !== 0 || good !== n ? `exit ${r.code}; ${good}/${n} said ${expect}; ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' ')}` : undefined
  return { seconds: r.ms / 1000, error, time }
}

/**
 * `xargs -P N ssh HOST COMMAND` with each server's output in a file of its own, checked by
 * `check(text)` (true when that server answered as it should): for commands whose answer spans
 * several writes (curl's status code, then `tail`), which the other servers' output could split
 * in a shared pipe. The redirection costs one bash start per server on top of its ssh.
 */
async function xargsEach(n, command, check, { parallel = n, extra = [] } = {}) {
  const dir = mkdtempSync(join(work, 'each-'))
  // $1 the output folder, $2 the parallelism, $3 the command, then ssh's options
  const script = `dir=$1 parallel=$2 command=$3
shift 3
exec xargs -P "$parallel" -I{} bash -c 'out=$1; shift; exec "$@" >"$out"' one "$dir/{}" ssh "$@" {} "$command"`
  const r = await run('bash', ['-c', script, 'xargs-each', dir, String(parallel), command, ...sshOpts, ...extra], { input: hostsOf(n).join('\n') + '\n' })
  const wrong = hostsOf(n).filter(h => !existsSync(join(dir, h)) || !check(readFileSync(join(dir, h), 'utf8')))
  rmSync(dir, { recursive: true, force: true })
  return {
    seconds: r.ms / 1000,
    error:
      r.code !== 0 || wrong.length
        ? `exit ${r.code}; ${n - wrong.length}/${n} answered as expected (not: ${wrong.slice(0, 5).join(' ')}); ${r.stderr.trim().split('\n').slice(-3).join(' ')}`
        : undefined
  }
}

/**
 * Issue 14: the operator's own fleet status, as they run it today without us (compose's view of
 * the project, the gateway's HTTP status, the last deploy), with the project path of the rig's
 * servers. Right when the gateway is listed, /health said 200 and a history line follows it.
 */
const operatorStatus = `cd ${PROJECT} && docker compose ps -a && curl -s -o /dev/null -w "%{http_code}" ${HEALTH_URL} && tail -n1 .openclaw-deploy/history.log`
const operatorAnswered = text => /openclaw-gateway/.test(text) && /^200\d{4}-\d\d-\d\dT\S+\tdeployed\t/m.test(text)

/**
 * The servers' deploy history as a deploy of ours leaves it (one line, by our own history step),
 * so that the operator's `tail` and our status both have a last deploy to show.
 */
async function seedHistory(n) {
  const line = `${new Date().toISOString()}\tdeployed\t${fleet.images.v1} -> ${fleet.images.v1}\tbench`
  const h = commands.appendHistory(PROJECT, line)
  const cmd = `mkdir -p ${quote(h.args[0])} && bash -c ${quote(h.script)} openclaw-history ${h.args.map(quote).join(' ')}`
  const r = await xargsSsh(n, cmd, 'appended=yes', { parallel: 10, extra: SAME_KEX })
  if (r.error) throw new Error(`writing the servers' history: ${r.error}`)
}

async function parallelSsh(n, command, expect) {
  const hosts = join(work, `pssh-hosts-${n}`)
  writeFileSync(hosts, hostsOf(n).join('\n') + '\n')
  const outdir = mkdtempSync(join(work, 'pssh-'))
  const r = await run('parallel-ssh', ['-p', String(n), '-t', '0', '-h', hosts, '-o', outdir, '-x', sshOpts.join(' '), command])
  const good = readdirSync(outdir).filter(f => readFileSync(join(outdir, f), 'utf8').includes(expect)).length
  return {
    seconds: r.ms / 1000,
    error:
      r.code !== 0 || good !== n
        ? `exit ${r.code}; ${good}/${n} said ${expect}; ${r.stdout
            .trim()
            .split('\n')
            .filter(l => /FAILURE/.test(l))
            .slice(0, 3)
            .join(' ')}`
        : undefined
  }
}

function ansibleSetup(n) {
  const inv = join(work, `inventory-${n}`)
  writeFileSync(
    inv,
    [
      '[fleet]',
      ...fleet.servers.slice(0, n).map(s => `${s.name} ansible_host=${s.host}`),
      '[fleet:vars]',
      'ansible_user=deploy',
      `ansible_ssh_private_key_file=${fleet.privateKeyFile}`,
      `ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=${fleet.knownHostsFile} -o StrictHostKeyChecking=yes'`,
      'ansible_python_interpreter=/usr/bin/python3',
      ''
    ].join('\n')
  )
  // a fresh control-socket folder per run: no run reuses the SSH connections of the one before
  const cp = mkdtempSync(join(work, 'cp-'))
  const env = {
    ...process.env,
    ANSIBLE_HOME: join(work, 'ansible-home'),
    ANSIBLE_LOCAL_TEMP: join(work, 'ansible-tmp'),
    ANSIBLE_SSH_CONTROL_PATH_DIR: cp,
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_DEPRECATION_WARNINGS: 'False'
  }
  return { inv, cp, env }
}

/** Ends the SSH master connections Ansible left behind (ControlPersist) by their control sockets. */
async function ansibleCleanup(cp) {
  await Promise.all(readdirSync(cp).map(sock => run('ssh', ['-o', `ControlPath=${join(cp, sock)}`, '-O', 'exit', 'x'])))
}

async function ansibleRaw(n, command, expect) {
  const { inv, cp, env } = ansibleSetup(n)
  // through a variable: ansible's parsing of -a's free form fails on the nested quoting of our
  // status script ("failed at splitting arguments"); {% raw %} keeps its {{ }} from Jinja
  const vars = join(work, 'raw-command.json')
  writeFileSync(vars, JSON.stringify({ command: `{% raw %}${command}{% endraw %}` }))
  const r = await run('ansible', ['all', '-i', inv, '-f', String(n), '-m', 'raw', '-a', '{{ command }}', '-e', `@${vars}`], { env })
  await ansibleCleanup(cp)
  const good = count(r.stdout, expect)
  return { seconds: r.ms / 1000, error: r.code !== 0 || good !== n ? `exit ${r.code}; ${good}/${n} said ${expect}; ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' ')}` : undefined }
}

/** Ansible doing the same steps as a playbook: one task per step, as Ansible users write it. */
function deployPlaybook(image) {
  const raw = s => `{% raw %}${s}{% endraw %}`
  const steps = deploySteps(image, 'bench ansible token=bench', 'bench')
  const step = (name, extra = {}) => {
    const [limit, command] = steps[name]
    const argv = command.args.map(a => fillIn(a, v => `{{ ${v} }}`, raw))
    return { name, 'ansible.builtin.command': { argv: ['timeout', '-k', '5', String(limit), 'bash', '-c', raw(command.script), `openclaw-${command.step}`, ...argv] }, ...extra }
  }
  const first = rx => `{{ ${rx} | first }}`
  const tasks = [
    step('lock'),
    step('preflight', { register: 'pf' }),
    step('pull', { register: 'pull' }),
    {
      name: 'facts',
      'ansible.builtin.set_fact': {
        current: first("pf.stdout | regex_search('(?m)^image_var=(.*)$', '\\1')"),
        running: first("pf.stdout | regex_search('(?m)^container=[^|]*[|][^|]*[|]([^|]*)[|]', '\\1')"),
        target: first("pull.stdout | regex_search('(?m)^image_id=(.*)$', '\\1')"),
        now: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M:%SZ') }}"
      }
    },
    step('record'),
    { name: 'switch the image in .env', 'ansible.builtin.lineinfile': { path: `${PROJECT}/.env`, regexp: '^OPENCLAW_IMAGE=', line: `OPENCLAW_IMAGE=${image}` } },
    step('up'),
    step('health'),
    step('prune'),
    step('history'),
    step('unlock')
  ]
  // (JSON is YAML: ansible-playbook reads this file as it is)
  return JSON.stringify([{ name: 'deploy OpenClaw', hosts: 'all', gather_facts: false, tasks }], null, 1)
}

async function ansibleDeploy(n, image) {
  const { inv, cp, env } = ansibleSetup(n)
  const book = join(work, 'deploy.yml')
  writeFileSync(book, deployPlaybook(image))
  const r = await run('ansible-playbook', ['-i', inv, '-f', String(n), book], { env })
  await ansibleCleanup(cp)
  const recap = r.stdout.split('\n').filter(l => /ok=\d+ .*failed=0/.test(l) && /unreachable=0/.test(l)).length
  return {
    seconds: r.ms / 1000,
    error:
      r.code !== 0 || recap !== n
        ? `exit ${r.code}; ${recap}/${n} hosts clean; ${r.stdout
            .split('\n')
            .filter(l => /fatal|FAILED|ERROR/.test(l))
            .slice(0, 2)
            .join(' ')
            .slice(0, 400)}`
        : undefined
  }
}

// ---------------------------------------------------------------------------------------------
// fleet preparation

/** In each server's home, `openclaw` → its project, so every tool names the same path. */
function linkProjects() {
  for (const s of fleet.servers) {
    const link = join(s.home, 'openclaw')
    if (!existsSync(link)) symlinkSync(s.path, link)
  }
}

const httpds = []
/**
 * sshd-only servers: the read-only docker stand-in over `docker` in each server's own mount
 * namespace, and a small HTTP server answering /health (`v1`) on the gateway's port in its netns.
 */
async function prepareStandins() {
  const www = join(RIG_DIR, 'bench-www')
  mkdirSync(www, { recursive: true })
  writeFileSync(join(www, 'health'), 'v1')
  // every `docker` on sshd's default PATH (the machine may have one in /usr/local/bin as well)
  const targets = ['/usr/local/bin/docker', '/usr/bin/docker'].filter(f => existsSync(f))
  if (!targets.length) throw new Error('no docker binary to mount the stand-in over (rig.sh install brings /usr/bin/docker)')
  const standin = join(ROOT, 'bench', 'standin', 'docker')
  for (const s of fleet.servers) {
    for (const target of targets) {
      const r = await run('nsenter', [`--mount=/proc/${sshdPid(s.name)}/ns/mnt`, 'mount', '--bind', standin, target])
      if (r.code !== 0) throw new Error(`stand-in mount on ${s.name}: ${r.stderr}`)
    }
    const child = spawn('nsenter', [`--net=/run/netns/${s.netns}`, 'busybox', 'httpd', '-f', '-p', '127.0.0.1:18789', '-h', www], { stdio: 'ignore' })
    httpds.push(child)
  }
  await sleep(500 + 2 * fleet.servers.length)
  // (our key exchange: 1000 servers' worth of post-quantum handshakes would take a minute of CPU)
  let probe = await xargsSsh(fleet.servers.length, statusCommand(), 'health=ok', { parallel: 50, extra: SAME_KEX })
  if (probe.error) {
    await sleep(3000)
    probe = await xargsSsh(fleet.servers.length, statusCommand(), 'health=ok', { parallel: 50, extra: SAME_KEX })
  }
  if (probe.error) throw new Error(`the stand-in servers do not answer status: ${probe.error}`)
}

function stopHttpds() {
  for (const c of httpds.splice(0)) if (c.exitCode === null) c.kill('SIGTERM')
}

async function up(n, docker) {
  log(`bringing up ${n} servers${docker ? ' (sshd + dockerd each)' : ' (sshd only)'}`)
  const status = await run('bash', [RIG, 'status'], { env: { ...process.env, RIG_DIR } })
  if (!/^down/.test(status.stdout)) await rig('down')
  const t0 = performance.now()
  await rig('up', String(n), ...(docker ? [] : ['--no-docker']))
  log(`up in ${((performance.now() - t0) / 1000).toFixed(0)} s`)
  setupClients()
  linkProjects()
}

async function down() {
  stopHttpds()
  await rig('down')
}

// ---------------------------------------------------------------------------------------------
// measuring

/** Busy share of the whole machine's CPU time between two readings of /proc/stat. */
function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) }
}
const busy = (a, b) => 1 - (b.idle - a.idle) / (b.total - a.total)

const median = xs => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const failures = []

/**
 * REPS timings of each contender ({ key, once } with once() → { seconds, error }), interleaved: round
 * i runs every contender once, in an order rotated by i, so drift on the shared machine hits all
 * alike. `prepare()` (not timed) runs before every run when given. A contender that fails once is
 * reported as failed and not run again.
 */
async function benchAll(tag, contenders, prepare) {
  const stats = Object.fromEntries(contenders.map(c => [c.key, { samples: [], busies: [], runs: [], median: NaN }]))
  for (let i = 0; i < REPS; i++) {
    for (let j = 0; j < contenders.length; j++) {
      const c = contenders[(i + j) % contenders.length]
      const st = stats[c.key]
      if (st.error) continue
      if (prepare) await prepare()
      const c0 = cpuTimes()
      const r = await c.once()
      st.busies.push(busy(c0, cpuTimes()))
      st.last = r
      if (r.error) {
        st.error = r.error
        failures.push(`${tag} ${c.key}: ${r.error}`)
        log(`FAILED ${tag} ${c.key}: ${r.error}`)
        continue
      }
      st.samples.push(r.seconds)
      st.runs.push(r)
    }
  }
  for (const c of contenders) {
    const st = stats[c.key]
    if (st.error) continue
    st.median = median(st.samples)
    st.busy = median(st.busies)
    log(`${tag} ${c.key}: ${st.samples.map(x => x.toFixed(2)).join(' ')} s; machine CPU busy ${st.busies.map(b => `${Math.round(b * 100)}%`).join(' ')}`)
  }
  return stats
}

const pct = x => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '–')
const fmt = x => (x === undefined ? 'skipped' : Number.isFinite(x) ? x.toFixed(2) : 'FAIL')
const ratio = (ourSeconds, other) => (Number.isFinite(ourSeconds) && Number.isFinite(other) ? `${(other / ourSeconds).toFixed(2)}` : '–')

const out = []
const emit = (...lines) => out.push(...lines)

// ---------------------------------------------------------------------------------------------
// 1 + 3: orchestration and scale, on sshd-only servers with the stand-in

async function orchestration(docker) {
  const cmd = statusCommand()
  const rows = []
  const sizes = docker ? DOCKER_STATUS_SIZES : STATUS_SIZES
  if (docker) await seedHistory(Math.max(...sizes))
  for (const n of sizes) {
    const tag = `status ${n}${docker ? ' (docker)' : ''}`
    log(tag)
    const contenders = [
      { key: 'ours', once: () => ours(n, { mode: 'status' }, ['healthy']) },
      { key: 'xargs', once: () => xargsSsh(n, cmd, 'health=ok') },
      ...(docker
        ? [
            { key: 'operator', once: () => xargsEach(n, operatorStatus, operatorAnswered) },
            { key: 'operator-curve25519', once: () => xargsEach(n, operatorStatus, operatorAnswered, { extra: SAME_KEX }) },
            { key: 'docker-ps', once: () => xargsEach(n, 'docker ps', text => /^CONTAINER ID/.test(text) && /openclaw-gateway/.test(text)) }
          ]
        : []),
      ...(docker ? [] : VARIANTS.map(v => ({ key: v.label, once: () => ours(n, { mode: 'status' }, ['healthy'], { action: v.file }) }))),
      ...(docker ? [] : [{ key: 'xargs-curve25519', once: () => xargsSsh(n, cmd, 'health=ok', { extra: SAME_KEX }) }]),
      ...(docker || SKIP.has('pssh') ? [] : [{ key: 'pssh', once: () => parallelSsh(n, cmd, 'health=ok') }]),
      ...(docker || SKIP.has('ansible') ? [] : [{ key: 'ansible', once: () => ansibleRaw(n, cmd, 'health=ok') }])
    ]
    const r = await benchAll(tag, contenders)
    const o = r.ours
    const x = r.xargs
    for (const v of docker ? [] : VARIANTS) {
      variantRows.push(`| ${n} | ${v.label} | ${fmt(r[v.label].median)} | ${fmt(o.median)} | ${fmt(x.median)} | ${ratio(r[v.label].median, x.median)} |`)
    }
    if (docker) {
      const [op, k, d] = [r.operator, r['operator-curve25519'], r['docker-ps']]
      rows.push(
        `| ${n} | ${fmt(o.median)} | ${fmt(op.median)} | ${ratio(o.median, op.median)} | ${fmt(k.median)} | ${ratio(o.median, k.median)} | ` +
          `${fmt(d.median)} | ${ratio(o.median, d.median)} | ${fmt(x.median)} | ${ratio(o.median, x.median)} |`
      )
      continue
    }
    const k = r['xargs-curve25519']
    const p = r.pssh ?? skipped
    const a = r.ansible ?? skipped
    rows.push(
      `| ${n} | ${fmt(o.median)} | ${fmt(x.median)} | ${ratio(o.median, x.median)} | ${fmt(k.median)} | ${ratio(o.median, k.median)} | ` +
        `${fmt(p.median)} | ${ratio(o.median, p.median)} | ${fmt(a.median)} | ${ratio(o.median, a.median)} |`
    )
  }
  return rows
}

async function scale() {
  const n = SCALE
  log(`scale: status on ${n} servers, max-parallel ${SCALE_PARALLEL}`)
  const ourRuns = []
  const theirRuns = []
  const variantRuns = VARIANTS.map(() => [])
  for (let i = 0; i < REPS; i++) {
    ourRuns.push(await ours(n, { mode: 'status', 'max-parallel': SCALE_PARALLEL }, ['healthy'], { timeWrap: true }))
    theirRuns.push(await xargsSsh(n, statusCommand(), 'health=ok', { parallel: SCALE_PARALLEL, timeWrap: true }))
    for (const [j, v] of VARIANTS.entries()) variantRuns[j].push(await ours(n, { mode: 'status', 'max-parallel': SCALE_PARALLEL }, ['healthy'], { timeWrap: true, action: v.file }))
  }
  for (const [j, v] of VARIANTS.entries()) for (const r of variantRuns[j].filter(r => r.error)) failures.push(`scale ${v.label}: ${r.error}`)
  for (const r of ourRuns.filter(r => r.error)) failures.push(`scale ours: ${r.error}`)
  for (const r of theirRuns.filter(r => r.error)) failures.push(`scale xargs: ${r.error}`)
  log(`scale ours: ${ourRuns.map(r => `${r.time[0]}s ${r.time[3]}KB`).join(', ')}; xargs: ${theirRuns.map(r => `${r.time[0]}s`).join(', ')}`)
  const row = (name, runs, rss) => {
    const wall = median(runs.map(r => r.time[0]))
    const cpu = median(runs.map(r => r.time[1] + r.time[2]))
    const errors = runs.reduce((a, r) => a + (r.badCount ?? (r.error ? 1 : 0)), 0)
    return `| ${name} | ${wall.toFixed(2)} | ${cpu.toFixed(2)} | ${((cpu * 1000) / n).toFixed(1)} | ${rss} | ${errors} |`
  }
  return [
    row(`ours (\`mode: status\`, max-parallel ${SCALE_PARALLEL})`, ourRuns, `${Math.round(Math.max(...ourRuns.map(r => r.time[3])) / 1024)} MB`),
    ...VARIANTS.map((v, j) => row(`${v.label} (\`mode: status\`, max-parallel ${SCALE_PARALLEL})`, variantRuns[j], `${Math.round(Math.max(...variantRuns[j].map(r => r.time[3])) / 1024)} MB`)),
    row(`xargs -P ${SCALE_PARALLEL} ssh (same remote commands)`, theirRuns, `${n} ssh processes of ${Math.round(Math.max(...theirRuns.map(r => r.time[3])) / 1024)} MB at most`)
  ]
}

// ---------------------------------------------------------------------------------------------
// 2 + 4: deploy and downtime, on sshd + dockerd servers

async function verifyServing(n, body) {
  const wrong = []
  for (const name of namesOf(n)) {
    const r = await run('bash', [RIG, 'exec', name, '--', 'curl', '-fsS', '--max-time', '3', HEALTH_URL], { env: { ...process.env, RIG_DIR } })
    if (r.stdout.trim() !== body) wrong.push(`${name}:${r.stdout.trim() || 'no answer'}`)
    if (existsSync(join(RIG_DIR, name, 'openclaw', '.openclaw-deploy', 'lock'))) wrong.push(`${name}:lock left`)
  }
  return wrong.length ? `after the deploy: ${wrong.slice(0, 5).join(', ')}` : undefined
}
const checked = async (n, r) => (r.error ? r : { ...r, error: await verifyServing(n, 'v2') })
const resetAll = () => rig('reset', 'all')

async function deploys() {
  const images = fleet.images
  const rows = []
  const bashCmd = `bash -c ${quote(deployScript(images.v2, 'bench xargs token=bench', 'bench'))} bench-deploy`
  let tenAtTen
  for (const n of DEPLOY_SIZES) {
    log(`deploy ${n}`)
    const r = await benchAll(
      `deploy ${n}`,
      [
        { key: 'ours', once: async () => checked(n, await ours(n, { image: images.v2 }, ['deployed'])) },
        { key: 'bash', once: async () => checked(n, await xargsSsh(n, bashCmd, 'deployed=yes')) },
        { key: 'ansible', once: async () => checked(n, await ansibleDeploy(n, images.v2)) }
      ],
      resetAll
    )
    const { ours: o, bash: b, ansible: a } = r
    if (n === 10) tenAtTen = o
    rows.push(`| ${n} | ${fmt(o.median)} | ${fmt(b.median)} | ${ratio(o.median, b.median)} | ${fmt(a.median)} | ${ratio(o.median, a.median)} | ` + `${pct(o.busy)} / ${pct(b.busy)} / ${pct(a.busy)} |`)
  }
  // issue 4: 10 servers at max-parallel 10 against the slowest of them deployed alone
  let alone
  if (DEPLOY_SIZES.includes(10)) {
    log('deploy: each of 10 servers alone')
    await resetAll()
    const solo = []
    const c0 = cpuTimes()
    for (const name of namesOf(10)) {
      const { env, dir, output } = actionEnv({ servers: name, 'max-parallel': 1, image: images.v2 })
      const r = await run(NODE, [ACTION], { env, cwd: dir })
      const res = resultsOf(output)[0]
      if (r.code !== 0 || res?.status !== 'deployed') failures.push(`deploy ${name} alone: ${res?.status} ${res?.error ?? ''}`)
      solo.push({ name, wall: r.ms / 1000, server: (res?.durationMs ?? NaN) / 1000 })
    }
    const slowest = solo.reduce((a, b) => (b.wall > a.wall ? b : a))
    const soloBusy = busy(c0, cpuTimes())
    // each run of the 10 at once: its wall time and its slowest server's own duration
    const inRun = tenAtTen.runs.map(r => `${r.seconds.toFixed(2)} s / ${(Math.max(...r.results.map(x => x.durationMs)) / 1000).toFixed(2)} s`).join(', ')
    alone = { tenAtTen, slowest, medianWall: median(solo.map(s => s.wall)), soloBusy, inRun }
  }
  return { rows, alone }
}

/** Starts the probe in server `name`; resolves once it has had a first answer. */
async function startProbe(name, maxSeconds) {
  const child = spawn('bash', [RIG, 'exec', name, '--', NODE, join(ROOT, 'bench', 'load.mjs'), HEALTH_URL, String(maxSeconds)], {
    env: { ...process.env, RIG_DIR },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', d => (stdout += d))
  const closed = new Promise(res => child.on('close', () => res()))
  await sleep(1500) // node start-up in the namespace and a steady run of good answers first
  return {
    async finish() {
      await sleep(1500)
      child.stdin.end()
      await closed
      return JSON.parse(stdout.trim().split('\n').at(-1))
    }
  }
}

async function downtime() {
  const images = fleet.images
  const measure = async (label, action) => {
    const gaps = []
    const fails = []
    const walls = []
    for (let i = 0; i < REPS; i++) {
      await rig('reset', 's1')
      const probe = await startProbe('s1', 120)
      const t0 = performance.now()
      const err = await action()
      walls.push((performance.now() - t0) / 1000)
      const p = await probe.finish()
      if (err) failures.push(`${label}: ${err}`)
      if (p.endedFailing) failures.push(`${label}: the gateway was still failing when the probe ended`)
      gaps.push(p.longestMs)
      fails.push(`${p.failures}/${p.requests}`)
      log(`${label}: ${p.longestMs} ms unanswered, ${p.failures}/${p.requests} failed, bodies ${p.bodies.join('→')}`)
    }
    return `| ${label} | ${Math.round(median(gaps))} ms | ${fails.join(', ')} | ${median(walls).toFixed(2)} s |`
  }
  const restart = await measure('container restart alone (`docker compose up -d --force-recreate`, v1)', async () => {
    const r = await run('bash', [RIG, 'exec', 's1', '--', 'docker', 'compose', 'up', '-d', '--force-recreate'], { env: { ...process.env, RIG_DIR } })
    return r.code ? r.stderr : undefined
  })
  const switchOnly = await measure('the same restart onto v2 (`docker compose up -d` after switching .env, image pulled)', async () => {
    const r = await run(
      'bash',
      [RIG, 'exec', 's1', '--', 'bash', '-c', `docker pull -q ${images.v2} >/dev/null && sed -i 's#^OPENCLAW_IMAGE=.*#OPENCLAW_IMAGE=${images.v2}#' .env && docker compose up -d`],
      { env: { ...process.env, RIG_DIR } }
    )
    return r.code ? r.stderr : undefined
  })
  const healthy = await measure('our deploy v1 → v2', async () => (await ours(1, { image: images.v2 }, ['deployed'])).error)
  const rolled = await measure(
    'our deploy of a broken image, rolled back (health-timeout 5 s)',
    async () => (await ours(1, { image: images.broken, 'health-timeout': 5 }, ['rolled-back'], { exitCode: 1 })).error
  )
  return [restart, switchOnly, healthy, rolled]
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = performance.now()
  await loadCommands()
  const nodeVersion = (await run(NODE, ['--version'])).stdout.trim()
  emit(
    `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}; ` +
      `action on Node ${nodeVersion}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. Medians of ${REPS} run(s), wall seconds; ` +
      'ratio = other / ours (above 1: ours is faster).',
    ''
  )
  if (only.has('scale')) {
    // before the rig comes up (rig.sh up checks memory and process limits for the servers): ours
    // holds one socket per connection, xargs one ssh and its pipes
    const files = Number((await run('bash', ['-c', 'ulimit -n'])).stdout.trim())
    if (files < 4 * SCALE_PARALLEL + 256) throw new Error(`scale: max-parallel ${SCALE_PARALLEL} needs about ${4 * SCALE_PARALLEL + 256} open files; ulimit -n is ${files}`)
  }
  const sshdOnly = Math.max(only.has('scale') ? SCALE : 0, only.has('status') ? Math.max(...STATUS_SIZES) : 0)
  if (sshdOnly > 0) {
    await up(sshdOnly, false)
    await prepareStandins()
    if (only.has('status')) {
      const rows = await orchestration(false)
      emit(
        '### 1. Orchestration overhead: read-only status of N servers',
        '',
        "sshd-only servers with the benchmark's read-only `docker` stand-in (bench/standin/docker) and a small HTTP server on the gateway port: the remote work costs almost nothing, so the times are the tools' own. Every tool runs the same commands our `mode: status` runs (taken from src/remote/commands.ts), at parallelism N.",
        '',
        '| servers | ours (`mode: status`) | xargs -P N ssh | ratio | xargs, ssh with our key exchange (curve25519) | ratio | parallel-ssh -p N | ratio | ansible -f N -m raw | ratio |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        ...rows,
        '',
        'OpenSSH 9.x negotiates sntrup761x25519 (post-quantum) by default, which costs the client about 0.1 s of CPU per connection here; our SSH library uses curve25519-sha256. The curve25519 column is OpenSSH with the same key exchange as ours.',
        ''
      )
    }
    if (only.has('scale')) {
      const rows = await scale()
      emit(
        `### 3. Scale: \`mode: status\` on ${SCALE} sshd-only servers (stand-in as above)`,
        '',
        '| run | wall s | CPU s (user+sys, with children) | CPU ms per server | peak RSS | servers not healthy |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
        ''
      )
    }
    await down()
  }
  if (only.has('status') && !SKIP.has('docker-status')) {
    // a fleet of its own: the deploys below run on no more dockerds than they use
    await up(Math.max(...DOCKER_STATUS_SIZES), true)
    const rows = await orchestration(true)
    emit(
      "### 1b. Status on sshd + dockerd servers against the operator's own status script",
      '',
      'Real Docker and Compose on every server (the upstream-shaped project, one history line from an earlier deploy), all on the same 2 cores. ' +
        "The operator's script is issue 14's fleet status as operators run it today: `xargs -P N ssh HOST '" +
        operatorStatus +
        "'` (checked: every server lists its gateway, answers 200 and shows its last deploy). The floor is `xargs -P N ssh HOST docker ps`, " +
        'one SSH connection and one Docker call per server. The last column runs our own status commands (src/remote/commands.ts) over xargs.',
      '',
      "| servers | ours (`mode: status`) | operator's script, xargs -P N ssh | ratio | the same, ssh with our key exchange (curve25519) | ratio | floor: xargs -P N ssh docker ps | ratio | our commands, xargs -P N ssh | ratio |",
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows,
      ''
    )
    await down()
  }
  if (only.has('deploy') || only.has('downtime')) {
    await up(only.has('deploy') ? Math.max(...DEPLOY_SIZES) : 1, true)
    if (only.has('deploy')) {
      const { rows, alone } = await deploys()
      emit(
        '### 2. Full deploy v1 → v2 (lock, preflight, pull, record, switch, up, health check, prune, history, unlock)',
        '',
        'The bash script and the playbook run our own step scripts (src/remote/commands.ts); the playbook has one task per step (`.env` through `lineinfile`), with pipelining. Parallelism N for all.',
        '',
        '| servers | ours | bash script, xargs -P N ssh | ratio | ansible-playbook -f N | ratio | machine CPU busy (ours / bash / ansible) |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...rows,
        ''
      )
      if (alone) {
        emit(
          `Issue 4: ours on 10 servers at max-parallel 10: ${fmt(alone.tenAtTen.median)} s (machine CPU ${pct(alone.tenAtTen.busy)} busy); per run, wall / slowest server ` +
            `within it: ${alone.inRun}. The same 10 servers deployed one at a time: slowest ${alone.slowest.wall.toFixed(2)} s ` +
            `(${alone.slowest.name}, ${alone.slowest.server.toFixed(2)} s on the server; median ${alone.medianWall.toFixed(2)} s; machine CPU ${pct(alone.soloBusy)} busy); ` +
            `10 at once / slowest alone = ${ratio(alone.slowest.wall, alone.tenAtTen.median)}.`,
          ''
        )
      }
    }
    if (only.has('downtime')) {
      const rows = await downtime()
      emit(
        '### 4. Downtime of one gateway (sequential GETs of /health every 10 ms from inside the server, new connection each)',
        '',
        '| what | longest unanswered window (median) | failed / sent, per run | wall of the change (median) |',
        '| --- | --- | --- | --- |',
        ...rows,
        ''
      )
    }
    await down()
  }
  if (variantRows.length) {
    emit(
      '### Other builds (BENCH_VARIANTS), status on the sshd-only servers of table 1',
      '',
      ...VARIANTS.map(v => `- ${v.label}: ${v.file}`),
      '',
      '| servers | build | its median | ours (dist/index.js) | xargs -P N ssh | ratio to xargs |',
      '| --- | --- | --- | --- | --- | --- |',
      ...variantRows,
      ''
    )
  }
  if (failures.length) emit('Failures:', '', ...failures.map(f => `- ${f}`), '')
  emit(`Benchmark wall time: ${((performance.now() - started) / 60000).toFixed(1)} min.`)
  const text = out.join('\n') + '\n'
  mkdirSync(dirname(OUT), { recursive: true })
  writeFileSync(OUT, text)
  process.stdout.write('\n' + text)
  log(`written to ${OUT}`)
}

try {
  await main()
} finally {
  stopHttpds()
  rmSync(work, { recursive: true, force: true })
}
if (failures.length) process.exitCode = 1
