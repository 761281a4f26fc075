// What a broken or compromised server can do to the run (DESIGN.md "Trust"): every tenant's .env
// secrets stay on its server, in every path that fails; a server that answers with forged workflow
// commands, Markdown, HTML or a flood adds nothing to the log or the summary and harms no other server.
import { readFileSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { micromark } from 'micromark'
import { gfm, gfmHtml } from 'micromark-extension-gfm'
import { runnerView } from '../fixtures/runner-view.js'
import { actionKeyInputs, authorizedKeysFile, envOf, healthOf, readFleet, resultsOf, statusOf, rig, runAction, server, serverExec, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'

const FLEET = ['s1', 's2', 's3', 's4', 's5', 's6']

let fleet: Fleet
let registryFile: string

function act(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction({ 'servers-file': registryFile, ...actionKeyInputs(fleet), 'health-timeout': '6', 'lock-timeout': '1', ...inputs })
}

async function sh(name: string, command: string): Promise<string> {
  const r = await serverExec(name, command)
  if (r.code !== 0) throw new Error(`${name}: ${command}: exit ${r.code}: ${r.stderr}`)
  return r.stdout.trim()
}

/** The secrets of every server's .env: every value of a token, key, cookie or password variable. */
function secretsOf(names: string[]): string[] {
  return names.flatMap(name =>
    envOf(server(fleet, name))
      .split('\n')
      .map(line => /^\s*(?:export\s+)?[A-Z0-9_]*(?:TOKEN|KEY|COOKIE|SECRET|PASSWORD)[A-Z0-9_]*\s*=\s*["']?([^"'\s#]*)/.exec(line)?.[1] ?? '')
      .filter(value => value.length >= 12)
  )
}

/**
 * The forms a secret could leave in: as text, hex, and base64 at each of the three alignments it can
 * have inside a longer base64 stream (base64 encodes 3-byte groups independently: the groups wholly
 * inside the secret are the same wherever the stream starts).
 */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret)
  const forms = [secret, bytes.toString('hex'), bytes.toString('hex').toUpperCase()]
  for (let offset = 0; offset < 3; offset++) {
    const b64 = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64')
    forms.push(b64.slice(offset ? 4 : 0, -4))
  }
  return forms.filter(f => f.length >= 8)
}

/** Every place a run shows anything: the log, stderr, the summary, the outputs. */
const everything = (run: ActionRun) => [run.stdout, run.stderr, run.summary, JSON.stringify(run.outputs)].join('\n')

function expectNoSecret(run: ActionRun, secrets: string[]): void {
  const text = everything(run)
  const leaked = secrets.flatMap(secret =>
    encodings(secret)
      .filter(form => text.includes(form))
      .map(form => `${secret} as ${form}`)
  )
  expect(leaked).toEqual([])
}

beforeAll(async () => {
  fleet = readFleet()
  registryFile = writeRegistry(fleet, FLEET)
  await rig('reset', 'all')
})

afterAll(async () => {
  await rig('registry', 'start')
  await rig('reset', 'all')
})

describe('tenant secrets never leave their server', () => {
  let secrets: string[]
  beforeAll(async () => {
    await rig('reset', 'all')
    // s4: a .env line Compose cannot parse, its value a secret (Compose's error quotes it)
    await sh('s4', `printf 'CLAUDE_WEB_COOKIE_NEW="sessionKey-sk-ant-${'ab12'.repeat(8)}\\n' >> .env`)
    // s5: a port that is no port: `compose up` fails quoting .env's value
    await sh('s5', `sed -i 's|^OPENCLAW_BRIDGE_PORT=.*|OPENCLAW_BRIDGE_PORT=not-a-port-SECRET_KEY_${'cd34'.repeat(6)}|' .env`)
    secrets = [...secretsOf(FLEET), `sessionKey-sk-ant-${'ab12'.repeat(8)}`, `SECRET_KEY_${'cd34'.repeat(6)}`]
    expect(secrets.length).toBeGreaterThanOrEqual(FLEET.length * 5)
  })

  it('in a deploy whose servers fail every way: pull, .env write, preflight after reading the folder, compose up, rollback', async () => {
    // s3: the folder .env is in cannot take the new file
    await sh('s3', 'mkdir -p .openclaw-deploy && chown deploy: .openclaw-deploy && chmod 555 .')
    try {
      const broken = await act({ image: fleet.images.broken })
      expect(statusOf(broken)).toMatchObject({ s1: 'rolled-back', s2: 'rolled-back', s3: 'failed', s4: 'failed', s5: 'failed', s6: 'rolled-back' })
      expect(resultsOf(broken).find(r => r.name === 's4')!.error).toMatch(/docker compose cannot read the project .*\[redacted\]/)
      expectNoSecret(broken, secrets)
      const pull = await act({ image: `${fleet.registry}/openclaw:no-such-tag`, servers: 's1,s2' })
      expect(statusOf(pull)).toEqual({ s1: 'failed', s2: 'failed' })
      expectNoSecret(pull, secrets)
    } finally {
      await sh('s3', 'chmod 755 .')
    }
  })

  it('in mode: status on healthy and unhealthy servers, and mode: rollback', async () => {
    await sh('s2', `sed -i 's|^OPENCLAW_IMAGE=.*|OPENCLAW_IMAGE=${fleet.images.broken}|' .env && docker compose up -d --quiet-pull openclaw-gateway >/dev/null 2>&1`)
    const status = await act({ mode: 'status' })
    expect(statusOf(status)).toMatchObject({ s1: 'healthy', s2: 'unhealthy', s4: 'failed', s6: 'healthy' })
    expectNoSecret(status, secrets)
    const rollback = await act({ mode: 'rollback', servers: 's1,s6' })
    expectNoSecret(rollback, secrets)
  })
})

describe('a hostile server', () => {
  // Text a compromised tenant's server sends back: CR to start a line of its own, forged workflow
  // commands (one in another tenant's name, one turning later commands off), a link, an image, HTML.
  const HOSTILE = '\r::error title=tenant-s6: failed::forged by s2\r\n::stop-commands::abc123\r\n[click me](https://evil.example/x) <img src=x onerror=alert(1)> <b>bold</b> :rocket: | row'
  const quotedForShell = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`
  /** The same text as a printf format: its CR and LF as escapes, so it fits on one authorized_keys line. */
  const asPrintf = (text: string) => text.replace(/%/g, '%%').replace(/\r/g, '\\r').replace(/\n/g, '\\n')
  let run: ActionRun
  let status: ActionRun

  beforeAll(async () => {
    await rig('reset', 'all')
    // s1 floods every step: 3 MiB on stdout and on stderr before the real command
    const authorized = (name: string) => authorizedKeysFile(server(fleet, name))
    const key = readFileSync(fleet.publicKeyFile, 'utf8').trim()
    writeFileSync(authorized('s1'), `command="head -c 3145728 /dev/zero | tr '\\0' A; head -c 3145728 /dev/zero | tr '\\0' B >&2; echo; eval \\"$SSH_ORIGINAL_COMMAND\\"" ${key}\n`)
    // s2 answers every step with the real output, then a hostile error= line on stdout, the same
    // text on stderr, and a failure
    writeFileSync(authorized('s2'), `command="eval \\"$SSH_ORIGINAL_COMMAND\\"; printf 'error=${asPrintf(HOSTILE)}\\n'; printf '${asPrintf(HOSTILE)} on stderr\\n' >&2; exit 3" ${key}\n`)
    // s3's compose file holds a service whose name carries the same text (Compose quotes it back)
    await sh('s3', `printf '  %s:\\n    image: busybox\\n' ${quotedForShell(JSON.stringify(HOSTILE))} >> docker-compose.yml`)
    // s4 holds a lock and a history line written by "another run" with that text
    const holder = HOSTILE.replace(/\r?\n/g, ' ')
    await sh(
      's4',
      `mkdir -p .openclaw-deploy/lock && printf '%s\\nexpires=%s\\n' ${quotedForShell(holder)} $(( $(date +%s) + 3600 )) > .openclaw-deploy/lock/holder && printf '2026-11-30T10:00:00Z\\tdeployed\\t%s\\t%s\\n' ${quotedForShell(HOSTILE)} ${quotedForShell(HOSTILE)} > .openclaw-deploy/history.log && chown -R deploy: .openclaw-deploy`
    )
    run = await act({ image: fleet.images.v2 })
    status = await act({ mode: 'status' })
  })

  afterAll(async () => {
    await rig('reset', 'all')
  })

  it('cannot stop the run: every server gets its result and the others deploy', async () => {
    expect(statusOf(run)).toMatchObject({ s1: 'deployed', s2: 'failed', s3: 'failed', s4: 'locked', s5: 'deployed', s6: 'deployed' })
    expect(await healthOf('s1')).toBe('v2')
    expect(await healthOf('s5')).toBe('v2')
    expect(run.summary).toMatch(/^\| tenant-s6 \| s6 \|/m)
  })

  it('cannot add a workflow command to the log', () => {
    for (const r of [run, status]) {
      const { commands } = runnerView(r.stdout)
      // every command is one of ours (a server's text may sit inside our annotation's message, inert)
      const ours =
        /^::(group::|endgroup::|add-mask::|warning title=s\d \(tenant-s\d\)::|error::\d+ of \d+ servers did not succeed|error title=s\d \(tenant-s\d\)%3A (failed|locked|rolled-back|unreachable|unhealthy)::)/
      expect(commands.filter(c => !ours.test(c))).toEqual([])
      expect(commands.filter(c => c.startsWith('::error title=tenant-s6'))).toEqual([])
    }
    // our own annotations still reach the runner as commands
    expect(runnerView(run.stdout).commands.some(c => c.startsWith('::error title=s2 (tenant-s2)%3A failed::'))).toBe(true)
    // the hostile text is still shown, inert, for the operator to read
    expect(runnerView(run.stdout).text.join('\n')).toContain('forged by s2')
  })

  it('cannot add a link, an image, HTML, an emoji or a row to the summary', () => {
    for (const r of [run, status]) {
      const html = micromark(r.summary, { allowDangerousHtml: true, extensions: [gfm()], htmlExtensions: [gfmHtml()] })
      expect(html).not.toMatch(/<a [^>]*evil|<img|<b>/)
      expect(html).toContain('forged by s2')
      // one row per server, no more
      expect(html.match(/<tr>/g)).toHaveLength(FLEET.length + 1)
    }
    expect(status.summary).toContain('click me')
  })

  it('cannot flood memory or the log: a step keeps a bounded tail', () => {
    expect(run.stdout.length).toBeLessThan(2 * 1024 * 1024)
    expect(run.stdout).not.toMatch(/A{100000}/)
  })
})
