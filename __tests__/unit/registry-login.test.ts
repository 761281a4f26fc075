/**
 * The pull with a registry login (commands.pullImageWithLogin), run in a local bash against a fake
 * `docker` that records what each call got: its arguments, its standard input, its environment, the
 * Docker config folder it was given, and every command line and environment of the user's processes
 * while it ran. The password must reach `docker login`'s stdin and nothing else.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
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
 * `login_says`), `pull` fails when `pull_fails` exists (or sleeps while `pull_sleeps` does), and
 * `image inspect` prints an ID. Each call leaves a numbered record in the folder `calls`.
 */
function fakeDocker(options: { loginSays?: string; pullFails?: string; pullSleeps?: boolean } = {}) {
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
printf '%s' "$config" > "$rec/config"
if [ -n "$config" ]; then stat -c %a -- "$config" > "$rec/config_mode"; ls -A -- "$config" > "$rec/config_files"; fi
case $1 in
  login)
    cat > "$rec/stdin"
    if [ -f "$root/login_says" ]; then cat "$root/login_says" >&2; exit 1; fi
    if cmp -s "$rec/stdin" "$root/expected"; then
      printf '{"auths": {"reg": {"auth": "x"}}}' > "$config/config.json"
      echo 'WARNING! Your credentials are stored unencrypted' >&2
      echo 'Login Succeeded'
    else
      echo 'Error response from daemon: Get "https://reg.test:5000/v2/": unauthorized: incorrect username or password' >&2
      exit 1
    fi ;;
  pull)
    ${options.pullSleeps ? 'sleep 30' : ''}
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
          files: at('config_files')?.trim()
        }
      })
  return { env, home, tmp, records }
}

function run(command: commands.RemoteCommand, env: NodeJS.ProcessEnv, viaTimeout?: number) {
  const words = ['bash', '-c', command.script, `openclaw-${command.step}`, ...command.args]
  const out = viaTimeout
    ? spawnSync('timeout', ['-k', '5', String(viaTimeout), ...words], { encoding: 'utf8', env, input: command.stdin })
    : spawnSync(words[0]!, words.slice(1), { encoding: 'utf8', env, input: command.stdin })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: commands.parseFacts(out.stdout) }
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
    expect(login!.files).toBe('')
    // the pull uses the login, and only this pull's folder
    expect(pull!.args).toEqual(['pull', '-q', '--', IMAGE])
    expect(pull!.config).toBe(config)
    expect(pull!.files).toBe('config.json')
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
    const docker = fakeDocker({ pullSleeps: true })
    const pulled = run(commands.pullImageWithLogin(IMAGE, LOGIN), docker.env, 1)
    expect(pulled.code).toBe(124)
    expect(docker.records().map(call => call.args.find(word => word === 'login' || word === 'pull'))).toEqual(['login', 'pull'])
    expect(readdirSync(docker.tmp)).toEqual([])
  })

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
