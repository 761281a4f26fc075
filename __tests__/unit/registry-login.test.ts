/**
 * The pull with a registry login (commands.pullImageWithLogin), run in a local bash against a fake
 * `docker` that records what each call got: its arguments, its standard input, its environment, the
 * Docker config folder it was given, and every command line and environment of the user's processes
 * while it ran. The password must reach `docker login`'s stdin and nothing else.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { basename, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import * as commands from '../../src/remote/commands.js'
import { tempDirs } from './fixtures/temp.js'

const tempDir = tempDirs()

const PASSWORD = 'ghp_s3cr3t-T0ken with spaces, quotes \' " and $(id)'
const LOGIN = { registry: 'reg.test:5000', username: 'ci-bot', password: PASSWORD }
const IMAGE = 'reg.test:5000/acme/openclaw:v2'

/**
 * A `docker` on PATH: `login` succeeds when its stdin is the expected password (or prints
 * `login_says`), after `loginSleeps` seconds; `pull` fails when `pull_fails` exists, after
 * `pullSleeps` seconds; `image inspect` prints an ID. Each call leaves a numbered record in the
 * folder `calls`. A login keeps the credentials where Docker would: with no auth in the config it
 * was given (docker/cli's `ContainsAuth()`: `credsStore`, `credHelpers` or an `auths` entry), Docker
 * detects a credential store, `pass` when the `pass` program and `docker-credential-pass` are on the
 * PATH, as both are here: stand-ins that record their calls in `helper_calls` and must never be called.
 */
function fakeDocker(options: { loginSays?: string; loginSleeps?: number; pullFails?: string; pullSleeps?: number } = {}) {
  const root = tempDir('openclaw-login-')
  const bin = join(root, 'bin')
  const calls = join(root, 'calls')
  const home = join(root, 'home')
  const tmp = join(root, 'tmp')
  for (const dir of [bin, calls, join(home, '.docker'), tmp]) mkdirSync(dir, { recursive: true })
  writeFileSync(join(home, '.docker', 'config.json'), '{"auths": {"other.example": {"auth": "b3RoZXI6bG9naW4="}}}\n')
  writeFileSync(join(root, 'expected'), PASSWORD)
  if (options.loginSays) writeFileSync(join(root, 'login_says'), options.loginSays)
  if (options.pullFails) writeFileSync(join(root, 'pull_fails'), options.pullFails)
  for (const helper of ['pass', 'docker-credential-pass']) {
    writeFileSync(join(bin, helper), `#!/bin/bash\n{ echo "${helper} $*"; cat; echo; } >> '${root}/helper_calls'\n`)
    chmodSync(join(bin, helper), 0o755)
  }
  // docker/cli: if !configFile.ContainsAuth() { CredentialsStore = DetectDefaultStore(...) }; the store then keeps the login
  writeFileSync(
    join(root, 'keep-login.cjs'),
    `const fs = require('fs'), [file, user, secret] = process.argv.slice(2), password = fs.readFileSync(secret, 'utf8')
let c = {}
try { c = JSON.parse(fs.readFileSync(file, 'utf8')) } catch {}
const contains = Boolean(c.credsStore) || Object.keys(c.credHelpers ?? {}).length > 0 || Object.keys(c.auths ?? {}).length > 0
c.auths ??= {}
if (!contains) {
  require('child_process').execFileSync('docker-credential-pass', ['store'], { input: JSON.stringify({ ServerURL: 'reg.test:5000', Username: user, Secret: password }) })
  c.credsStore = 'pass'
  c.auths['reg.test:5000'] = {}
} else if (!c.credsStore) c.auths['reg.test:5000'] = { auth: Buffer.from(user + ':' + password).toString('base64') }
fs.writeFileSync(file, JSON.stringify(c))
`
  )
  writeFileSync(
    join(bin, 'docker'),
    `#!/bin/bash
root='${root}'
n=$(ls "$root/calls" | wc -l) rec="$root/calls/$n"
mkdir "$rec"
printf '%s\\0' "$@" > "$rec/args"
env > "$rec/env"
for p in /proc/[0-9]*; do
  [ -O "$p" ] || continue
  { tr '\\0' ' ' < "$p/cmdline"; echo; tr '\\0' '\\n' < "$p/environ"; } 2>/dev/null
done > "$rec/procs"
config=\${DOCKER_CONFIG:-}
if [ "$1" = --config ]; then config=$2; shift 2; fi
if [ -n "$config" ]; then
  stat -c %a -- "$config" > "$rec/config_mode"; ls -A -- "$config" > "$rec/config_files"
  cp -- "$config/config.json" "$rec/config_json" 2>/dev/null
fi
printf '%s' "$config" > "$rec/config"
case $1 in
  login)
    cat > "$rec/stdin"
    sleep ${options.loginSleeps ?? 0}
    if [ -f "$root/login_says" ]; then cat "$root/login_says" >&2; exit 1; fi
    if cmp -s "$rec/stdin" "$root/expected"; then
      node "$root/keep-login.cjs" "$config/config.json" "$3" "$rec/stdin" || exit 1
      echo 'WARNING! Your credentials are stored unencrypted' >&2
      echo 'Login Succeeded'
    else
      echo 'Error response from daemon: Get "https://reg.test:5000/v2/": unauthorized: incorrect username or password' >&2
      exit 1
    fi ;;
  pull)
    sleep ${options.pullSleeps ?? 0}
    if [ -f "$root/pull_fails" ]; then cat "$root/pull_fails" >&2; exit 1; fi ;;
  image) echo sha256:0123456789abcdef ;;
esac
`
  )
  chmodSync(join(bin, 'docker'), 0o755)
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, HOME: home, TMPDIR: tmp }
  const records = () =>
    readdirSync(calls)
      .sort((a, b) => Number(a) - Number(b))
      .map(n => {
        const at = (file: string) => (existsSync(join(calls, n, file)) ? readFileSync(join(calls, n, file), 'utf8') : undefined)
        return {
          args: at('args')!.split('\0').slice(0, -1),
          stdin: at('stdin'),
          env: at('env')!,
          procs: at('procs')!,
          config: at('config')!,
          mode: at('config_mode')?.trim(),
          files: at('config_files')?.trim(),
          json: at('config_json')
        }
      })
  /** What the stand-ins of a credential store were asked (nothing, if Docker kept the login in the file). */
  const helperCalls = () => (existsSync(join(root, 'helper_calls')) ? readFileSync(join(root, 'helper_calls'), 'utf8') : '')
  /** Resolves once the `n`th call (0: the login, 1: the pull) has started. */
  const started = async (n: number) => {
    while (!existsSync(join(calls, String(n), 'config'))) await sleep(20)
  }
  return { root, bin, env, home, tmp, records, helperCalls, started }
}

function run(command: commands.RemoteCommand, env: NodeJS.ProcessEnv, viaTimeout?: number) {
  const words = ['bash', '-c', command.script, `openclaw-${command.step}`, ...command.args]
  const out = viaTimeout
    ? spawnSync('timeout', ['-k', '5', String(viaTimeout), ...words], { encoding: 'utf8', env, input: command.stdin })
    : spawnSync(words[0]!, words.slice(1), { encoding: 'utf8', env, input: command.stdin })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: commands.parseFacts(out.stdout) }
}

/** The step started in the background, in a process group of its own, with its stdin written and closed. */
function start(command: commands.RemoteCommand, env: NodeJS.ProcessEnv) {
  const child = spawn('bash', ['-c', command.script, `openclaw-${command.step}`, ...command.args], { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
  child.stdin.end(command.stdin)
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(resolve => child.on('close', (code, signal) => resolve({ code, signal, stderr })))
  return { child, ended }
}

describe('pull with a registry login', () => {
  it('logs in with the password on stdin only, into a config folder of its own that is gone afterwards', () => {
    const docker = fakeDocker()
    const homeConfig = readFileSync(join(docker.home, '.docker', 'config.json'), 'utf8')
    const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
    expect(pulled).toMatchObject({ code: 0, stderr: '' })
    expect(pulled.facts.get('image_id')).toEqual(['sha256:0123456789abcdef'])

    const [login, pull, inspect, ...more] = docker.records()
    expect(more).toEqual([])
    const config = login!.config
    expect(config.startsWith(`${docker.tmp}/openclaw-docker-config.`)).toBe(true)
    expect(login!.args).toEqual(['--config', config, 'login', '--username=ci-bot', '--password-stdin', '--', 'reg.test:5000'])
    expect(login!.stdin).toBe(PASSWORD)
    expect(login!.mode).toBe('700')
    // an auth entry for no real registry, so that Docker keeps the login in this file, not in a credential store
    expect(login!.files).toBe('config.json')
    expect(JSON.parse(login!.json!)).toEqual({ auths: { 'openclaw-deploy.invalid': {} } })
    expect(docker.helperCalls()).toBe('')
    // the pull uses the login, and only this pull's folder
    expect(pull!.args).toEqual(['pull', '-q', '--', IMAGE])
    expect(pull!.config).toBe(config)
    expect(pull!.files).toBe('config.json')
    expect(JSON.parse(pull!.json!)).toEqual({ auths: { 'openclaw-deploy.invalid': {}, 'reg.test:5000': { auth: expect.any(String) } } })
    expect(inspect!.args.slice(0, 2)).toEqual(['image', 'inspect'])
    // gone after the step; the user's own Docker config untouched, and no other folder left behind
    expect(existsSync(config)).toBe(false)
    expect(readdirSync(docker.tmp)).toEqual([])
    expect(readFileSync(join(docker.home, '.docker', 'config.json'), 'utf8')).toBe(homeConfig)
    expect(readdirSync(join(docker.home, '.docker'))).toEqual(['config.json'])
    // never in a command line or an environment of any process, nor in any output
    for (const call of docker.records()) {
      expect(call.args.join(' ')).not.toContain('s3cr3t')
      expect(call.env).not.toContain('s3cr3t')
      expect(call.procs).not.toContain('s3cr3t')
    }
    expect(pulled.stdout + pulled.stderr).not.toContain('s3cr3t')
  })

  it("ends with Docker's reason on a wrong password, pulls nothing, and removes the folder", () => {
    const docker = fakeDocker()
    const pulled = run(commands.pullImageWithLogin(IMAGE, { ...LOGIN, password: 'wrong-password' }), docker.env)
    expect(pulled.code).toBe(3)
    expect(pulled.facts.get('error')).toEqual([
      'docker login to reg.test:5000 as ci-bot failed: Error response from daemon: Get "https://reg.test:5000/v2/": unauthorized: incorrect username or password'
    ])
    expect(docker.records().map(call => call.args.find(word => word === 'login' || word === 'pull'))).toEqual(['login'])
    expect(readdirSync(docker.tmp)).toEqual([])
  })

  it('cuts the password out of a reason that quotes it, on one bounded line', () => {
    const docker = fakeDocker({ loginSays: `Error: bad password ${PASSWORD}\n${'x'.repeat(2000)}\n` })
    const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
    expect(pulled.code).toBe(3)
    const [error] = pulled.facts.get('error') ?? []
    expect(error).toMatch(/^docker login to reg.test:5000 as ci-bot failed: Error: bad password \[redacted\] x+$/)
    expect(error!.length).toBeLessThan(500)
    expect(pulled.stdout + pulled.stderr).not.toContain('s3cr3t')
  })

  it("removes the folder when the pull itself fails, with the pull's reason", () => {
    const docker = fakeDocker({ pullFails: 'Error response from daemon: manifest for reg.test:5000/acme/openclaw:v2 not found: manifest unknown\n' })
    const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
    expect(pulled.code).toBe(3)
    expect(pulled.facts.get('error')?.[0]?.trim()).toBe(`docker pull ${IMAGE} failed: Error response from daemon: manifest for ${IMAGE} not found: manifest unknown`)
    expect(readdirSync(docker.tmp)).toEqual([])
  })

  it('removes the folder when the remote timeout ends the pull', () => {
    const docker = fakeDocker({ pullSleeps: 30 })
    const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env, 1)
    expect(pulled.code).toBe(124)
    expect(docker.records().map(call => call.args.find(word => word === 'login' || word === 'pull'))).toEqual(['login', 'pull'])
    expect(readdirSync(docker.tmp)).toEqual([])
  })

  it('is checked against a Docker that picks a credential store for an empty config, as docker/cli does', () => {
    // (the stand-in would hand the password to docker-credential-pass, were the folder empty)
    const docker = fakeDocker()
    const empty = tempDir('openclaw-login-empty-')
    const login = spawnSync('docker', ['--config', empty, 'login', '--username', 'ci-bot', '--password-stdin', '--', 'reg.test:5000'], { encoding: 'utf8', env: docker.env, input: PASSWORD })
    expect(login.status).toBe(0)
    expect(docker.helperCalls()).toContain(`docker-credential-pass store\n{"ServerURL":"reg.test:5000","Username":"ci-bot","Secret":`)
    expect(JSON.parse(readFileSync(join(empty, 'config.json'), 'utf8'))).toMatchObject({ credsStore: 'pass' })
  })

  it.each([
    ['the pull', { pullSleeps: 2 }, 1],
    ['a login that then fails', { loginSleeps: 1, loginSays: 'Error response from daemon: unauthorized\n' }, 0]
  ])(
    "removes the folder when the channel's stdout closes during %s (SIGPIPE)",
    async (_during, options, call) => {
      const docker = fakeDocker(options)
      const { child, ended } = start(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
      await docker.started(call)
      const config = docker.records()[0]!.config
      expect(existsSync(config)).toBe(true)
      child.stdout.destroy()
      const end = await ended
      // it ended by its own exit, which ran the EXIT trap, not killed by SIGPIPE
      expect(end.signal).toBeNull()
      expect(existsSync(config)).toBe(false)
      expect(readdirSync(docker.tmp)).toEqual([])
    },
    20_000
  )

  it.each(['SIGHUP', 'SIGTERM'] as const)(
    'removes the folder on %s mid-pull',
    async signal => {
      const docker = fakeDocker({ pullSleeps: 30 })
      const { child, ended } = start(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
      await docker.started(1)
      // to the step's process group, as the remote timeout and a hangup send it
      process.kill(-child.pid!, signal)
      const end = await ended
      expect(end).toMatchObject({ code: 143, signal: null })
      expect(readdirSync(docker.tmp)).toEqual([])
    },
    20_000
  )

  it('ends quietly on a TERM before its folder exists', async () => {
    const docker = fakeDocker()
    const command = commands.pullImageWithLogin(IMAGE, LOGIN)
    const child = spawn('bash', ['-c', command.script, 'openclaw-pull', ...command.args], { env: docker.env, stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    // still waiting for the password: no folder yet, the EXIT trap has nothing to remove
    await sleep(300)
    child.kill('SIGTERM')
    const [code] = (await once(child, 'close')) as [number | null]
    expect({ code, output }).toEqual({ code: 143, output: '' })
    expect(docker.records()).toEqual([])
    expect(readdirSync(docker.tmp)).toEqual([])
  }, 20_000)

  it('says so when it cannot make its folder, with nothing to remove', () => {
    const docker = fakeDocker()
    const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), { ...docker.env, TMPDIR: join(docker.tmp, 'missing') })
    expect(pulled).toMatchObject({ code: 3, stderr: '' })
    expect(pulled.facts.get('error')).toEqual([`cannot make a temporary Docker config folder in ${docker.tmp}/missing as ${userInfo().username}`])
    expect(docker.records()).toEqual([])
  })

  it("sweeps this user's folders left by pulls killed with SIGKILL: of ours by name, their flock free, over a minute old", async () => {
    const docker = fakeDocker()
    const folder = (name: string, age: string) => {
      mkdirSync(join(docker.tmp, name), { recursive: true })
      execFileSync('touch', ['-d', age, join(docker.tmp, name)])
    }
    folder('openclaw-docker-config.killed0001', '1501 minutes ago')
    folder('openclaw-docker-config.killed0002', '2 minutes ago')
    // a live pull holds its folder's flock, however long it has run
    folder('openclaw-docker-config.running001', '2000 minutes ago')
    // one just made: its pull takes the flock right after mktemp
    folder('openclaw-docker-config.justmade01', 'now')
    folder('other-tool.docker-config', '2000 minutes ago')
    folder('nested/openclaw-docker-config.deeper0001', '2000 minutes ago')
    writeFileSync(join(docker.tmp, 'openclaw-docker-config.a-file-0001'), '')
    execFileSync('touch', ['-d', '2000 minutes ago', join(docker.tmp, 'openclaw-docker-config.a-file-0001')])
    const others = process.getuid?.() === 0
    if (others) {
      folder('openclaw-docker-config.otheruser1', '2000 minutes ago')
      chownSync(join(docker.tmp, 'openclaw-docker-config.otheruser1'), 65534, 65534)
    }
    const holder = spawn('flock', [join(docker.tmp, 'openclaw-docker-config.running001'), 'sleep', '60'], { stdio: 'ignore', detached: true })
    try {
      while (spawnSync('flock', ['-n', join(docker.tmp, 'openclaw-docker-config.running001'), 'true']).status === 0) await sleep(20)
      const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
      expect(pulled).toMatchObject({ code: 0, stderr: '' })
    } finally {
      // (flock and its sleep: a group of their own)
      process.kill(-holder.pid!, 'SIGTERM')
    }
    expect(readdirSync(docker.tmp).sort()).toEqual(
      [
        'nested',
        'openclaw-docker-config.a-file-0001',
        'openclaw-docker-config.justmade01',
        ...(others ? ['openclaw-docker-config.otheruser1'] : []),
        'openclaw-docker-config.running001',
        'other-tool.docker-config'
      ].sort()
    )
    expect(readdirSync(join(docker.tmp, 'nested'))).toEqual(['openclaw-docker-config.deeper0001'])
  }, 20_000)

  it("leaves a running pull's folder alone, however old: the pull holds its flock", async () => {
    const docker = fakeDocker({ pullSleeps: 30 })
    const first = start(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env)
    await docker.started(1)
    const config = docker.records()[0]!.config
    execFileSync('touch', ['-d', '2000 minutes ago', config])
    expect(spawnSync('flock', ['-n', config, 'true']).status).toBe(1)
    // another login pull by the same user in the same TMPDIR meanwhile
    const other = run(commands.pullImageWithLogin(IMAGE, LOGIN), { ...fakeDocker().env, TMPDIR: docker.tmp })
    expect(other).toMatchObject({ code: 0, stderr: '' })
    expect(readdirSync(docker.tmp)).toEqual([basename(config)])
    process.kill(-first.child.pid!, 'SIGTERM')
    expect(await first.ended).toMatchObject({ code: 143, signal: null })
    expect(readdirSync(docker.tmp)).toEqual([])
  }, 20_000)

  it('says so when no password arrives', () => {
    const docker = fakeDocker()
    const pulled = run({ ...commands.pullImageWithLogin(IMAGE, LOGIN), stdin: '' }, docker.env)
    expect(pulled.code).toBe(3)
    expect(pulled.facts.get('error')?.[0]).toMatch(/^no registry password arrived/)
    expect(docker.records()).toEqual([])
  })

  it('keeps the password out of the command line, and no value changes its shape', () => {
    const shape = commands.pullImageWithLogin('x', { registry: 'y', username: 'z', password: 'p' })
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string({ minLength: 1 }), (image, registry, username, password) => {
        fc.pre(![image, registry, username, password].some(v => v.includes('\0')))
        const command = commands.pullImageWithLogin(image, { registry, username, password: `PW${password}` })
        expect(command.script).toBe(shape.script)
        expect(command.args).toEqual([image, registry, username])
        expect(command.stdin).toBe(`PW${password}`)
        const line = commands.renderCommand(commands.withLease('/srv/a', 'token', command), 60)
        if (!`${image}${registry}${username}`.includes(`PW${password}`)) expect(line).not.toContain(`PW${password}`)
      }),
      { numRuns: 200 }
    )
  })
})
