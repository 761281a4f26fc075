// Preflight (commands.preflight) in a real bash, reading the project's services and restart policies
// from the real `docker compose config --no-interpolate` (which needs no daemon) of upstream's compose
// file as setup-server.sh installs it. The stand-in `docker` first on the PATH answers only what needs
// a daemon (`info`, `compose ps`) and hands everything else to the real Docker CLI.
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { describe, expect, it } from '@jest/globals'
import * as commands from '../../src/remote/commands.js'
import { tempDirs } from './fixtures/temp.js'

const tempDir = tempDirs()
const root = resolve(dirname(new URL(import.meta.url).pathname), '..', '..')
const UPSTREAM = join(root, 'scripts', 'deployment', 'server', 'docker-compose.yml')

const realDocker = spawnSync('bash', ['-c', 'command -v docker'], { encoding: 'utf8' }).stdout.trim()
const bin = tempDir('openclaw-bin-')
writeFileSync(
  join(bin, 'docker'),
  `#!/bin/sh
case "$1 $2" in
  "info "*) echo 28.2.2 ;;
  "compose ps") ;;
  *) exec '${realDocker}' "$@" ;;
esac
`
)
chmodSync(join(bin, 'docker'), 0o755)
// (no HOME: the real CLI reads no user config)
const env = { PATH: `${bin}:${process.env.PATH}`, HOME: '/nonexistent' }

function project(env: string, compose?: string): string {
  const dir = tempDir('openclaw-preflight-')
  if (compose === undefined) copyFileSync(UPSTREAM, join(dir, 'docker-compose.yml'))
  else writeFileSync(join(dir, 'docker-compose.yml'), compose)
  writeFileSync(join(dir, '.env'), env)
  return dir
}

function preflight(dir: string) {
  const command = commands.preflight(dir, 'OPENCLAW_IMAGE')
  const out = spawnSync('bash', ['-c', command.script, `openclaw-${command.step}`, ...command.args], { encoding: 'utf8', env, timeout: 30_000 })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: commands.parseFacts(out.stdout) }
}

/** The .env docker-setup.sh writes (with provider credentials added by hand), image line first. */
const UPSTREAM_ENV = `OPENCLAW_IMAGE=reg.test/openclaw:v1
OPENCLAW_CONFIG_DIR=/home/deploy/.openclaw
OPENCLAW_WORKSPACE_DIR=/home/deploy/.openclaw/workspace
OPENCLAW_GATEWAY_PORT=18789
OPENCLAW_BRIDGE_PORT=18790
OPENCLAW_GATEWAY_BIND=lan
OPENCLAW_GATEWAY_TOKEN=${'ab'.repeat(32)}
OPENCLAW_EXTRA_MOUNTS=
OPENCLAW_HOME_VOLUME=
OPENCLAW_DOCKER_APT_PACKAGES=
CLAUDE_AI_SESSION_KEY=sk-ant-secret-session
OPENAI_API_KEY=sk-secret-openai
`

describe("preflight reads the project's services from docker compose config", () => {
  it("upstream's compose file: both services take the image variable, only the gateway restarts", () => {
    const read = preflight(project(UPSTREAM_ENV))
    expect(read.stderr).toBe('')
    expect(read.code).toBe(0)
    expect(read.stdout).toBe('compose=docker-compose.yml\nimage_var=reg.test/openclaw:v1\nservice=openclaw-cli|yes|\nservice=openclaw-gateway|yes|unless-stopped\n')
    // nothing of .env but the image reaches the output
    for (const secret of ['sk-ant-secret-session', 'sk-secret-openai', 'ab'.repeat(32)]) expect(read.stdout).not.toContain(secret)
  })

  it('works without an image line in .env (the compose default), and without the variables the file names', () => {
    const read = preflight(project('CLAUDE_AI_SESSION_KEY=x\n'))
    expect(read.code).toBe(0)
    expect(read.facts.get('image_var')).toBeUndefined()
    expect(read.facts.get('service')).toEqual(['openclaw-cli|yes|', 'openclaw-gateway|yes|unless-stopped'])
  })

  it('tells every way of naming the variable from a fixed image, and reads every restart policy as Compose writes it', () => {
    const compose = `services:
  a:
    image: \${OPENCLAW_IMAGE}
    restart: always
  b:
    image: $OPENCLAW_IMAGE
    restart: "no"
  c:
    image: \${OPENCLAW_IMAGE?set it in .env}
    restart: on-failure:3
  d:
    image: reg.test/\${OPENCLAW_IMAGE_NAME:-caddy}:2
    restart: unless-stopped
  e:
    image: busybox
  f:
    image: "\${OPENCLAW_IMAGE:-openclaw:local}"
    environment:
      image: not-this
      restart: not-this-either
`
    const read = preflight(project('', compose))
    expect(read.stderr).toBe('')
    expect(read.facts.get('service')).toEqual(['a|yes|always', 'b|yes|no', 'c|yes|on-failure:3', 'd|no|unless-stopped', 'e|no|', 'f|yes|'])
  })
})

describe('preflight refuses an image line it cannot read as Compose does', () => {
  it('a quoted image value that spans several lines: refused, saying what to do', () => {
    const read = preflight(project(`A=1\nOPENCLAW_IMAGE="reg.test/openclaw:v1\n"\nB=2\n`))
    expect(read.code).toBe(commands.EXIT_CODE.failed)
    expect(read.stdout).toMatch(/^compose=docker-compose.yml\n/)
    expect(read.facts.get('error')).toEqual([expect.stringMatching(/^the value of OPENCLAW_IMAGE in \/.*\/\.env is quoted and spans several lines: put the image reference on one line$/)])
    expect(read.facts.get('image_var')).toBeUndefined()
    expect(read.facts.get('service')).toBeUndefined()
  })

  it('quotes that never close: refused the same way', () => {
    const read = preflight(project(`OPENCLAW_IMAGE='reg.test/openclaw:v1\nB=2\n`))
    expect(read.code).toBe(commands.EXIT_CODE.failed)
    expect(read.facts.get('error')?.[0]).toMatch(/is quoted and spans several lines: put the image reference on one line$/)
  })

  it('an image line inside another multi-line value is not taken for the variable', () => {
    const read = preflight(project(`NOTE="first\nOPENCLAW_IMAGE=evil:1\n"\nOPENCLAW_IMAGE=reg.test/openclaw:v1\n`))
    expect(read.code).toBe(0)
    expect(read.facts.get('image_var')).toEqual(['reg.test/openclaw:v1'])
    const only = preflight(project(`NOTE='first\nOPENCLAW_IMAGE=evil:1'\n`))
    expect(only.code).toBe(0)
    expect(only.facts.get('image_var')).toBeUndefined()
  })
})
