// mode rotate-key: its inputs, checked before any connection, and one server's rotation end to end
// on this machine: the real authorized_keys scripts run in a local bash on a scratch home, behind a
// stand-in for sshd that lets a key in when that file (or a second one, as AuthorizedKeysFile may
// name) holds it and its type is allowed, as PubkeyAcceptedAlgorithms would.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals'
import type { RunContext } from '../../src/deploy/run-context.js'
import type { RemoteCommand } from '../../src/remote/commands.js'
import type { CommandResult, RemoteShell } from '../../src/remote/ssh.js'
import type { Server } from '../../src/registry/types.js'
import type { Settings } from '../../src/settings.js'
import * as core from '../__fixtures__/core.js'
import { makeServer } from './fixtures/servers.js'
import { inputReaders } from './fixtures/inputs.js'
import { tempDirs } from './fixtures/temp.js'

jest.unstable_mockModule('@actions/core', () => core)
const { ConnectError } = await import('../../src/remote/ssh.js')
const { renderCommand } = await import('../../src/remote/commands.js')
const { publicKeyOf } = await import('../../src/remote/deploy-keys.js')
const { runFleet } = await import('../../src/deploy/fleet.js')
const { runServer } = await import('../../src/deploy/pipeline.js')
const { buildPlan, formatPlan } = await import('../../src/plan.js')
const { renderSummary, setOutputs } = await import('../../src/report/report.js')
const { readSettings } = await import('../../src/settings.js')

const temp = tempDirs()
const USER = userInfo().username

interface KeyFiles {
  private: string
  public: string
  /** `type blob` */
  words: string
  /** What `ssh-keygen -lf` prints for it. */
  keygen: string
}
let OLD: KeyFiles
let NEW: KeyFiles
let ENCRYPTED: KeyFiles

function keyPair(type: string, passphrase = ''): KeyFiles {
  const file = join(temp('openclaw-keygen-'), 'id')
  const made = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', 'test', '-f', file], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(made.stderr)
  const pub = readFileSync(`${file}.pub`, 'utf8')
  return { private: readFileSync(file, 'utf8'), public: pub, words: pub.split(' ').slice(0, 2).join(' '), keygen: spawnSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).stdout }
}

beforeAll(() => {
  OLD = keyPair('ed25519')
  NEW = keyPair('ecdsa')
  ENCRYPTED = keyPair('ed25519', 'correct horse')
})
beforeEach(() => {
  jest.clearAllMocks()
})

const { read, problems } = inputReaders(readSettings)
const rotation = (inputs: Record<string, string> = {}) => read({ mode: 'rotate-key', 'ssh-private-key': OLD.private, 'new-ssh-private-key': NEW.private, ...inputs })

describe('the inputs', () => {
  it('derives both public keys and their fingerprints as ssh-keygen -l shows them, and masks the new key', () => {
    const settings = rotation({ 'new-ssh-passphrase': 'not needed but masked' })
    const { next, current } = settings.keyRotation!
    expect(`${next.type} ${next.blob}`).toBe(NEW.words)
    expect(`${current!.type} ${current!.blob}`).toBe(OLD.words)
    expect(NEW.keygen).toContain(` ${next.fingerprint} `)
    expect(NEW.keygen).toMatch(/\(ECDSA\)\s*$/)
    expect(next.label).toBe('ECDSA')
    expect(OLD.keygen).toContain(` ${current!.fingerprint} `)
    const masked = core.setSecret.mock.calls.map(c => c[0])
    expect(masked).toContain(NEW.private.trim())
    expect(masked).toContain('not needed but masked')
  })

  it('reads an encrypted new key with its passphrase', () => {
    expect(rotation({ 'new-ssh-private-key': ENCRYPTED.private, 'new-ssh-passphrase': 'correct horse' }).keyRotation!.next.blob).toBe(ENCRYPTED.words.split(' ')[1])
  })

  it.each([
    ['missing', { 'new-ssh-private-key': '' }, /^Input "new-ssh-private-key" is required in mode "rotate-key": .*secrets\.NEW_SSH_PRIVATE_KEY.*ssh-keygen/],
    ['not a key', { 'new-ssh-private-key': 'hello' }, /^Input "new-ssh-private-key" cannot be used as an SSH private key: Unsupported key format .*is "new-ssh-passphrase" right\?/],
    ['a public key', { 'new-ssh-private-key': () => NEW.public }, /^Input "new-ssh-private-key" cannot be used as an SSH private key: this is a public key; the private key is needed/],
    ['encrypted, no passphrase', { 'new-ssh-private-key': () => ENCRYPTED.private }, /^Input "new-ssh-private-key" cannot be used .*no passphrase given.*"new-ssh-passphrase"/],
    ['wrong passphrase', { 'new-ssh-private-key': () => ENCRYPTED.private, 'new-ssh-passphrase': 'wrong' }, /^Input "new-ssh-private-key" cannot be used .*bad passphrase/],
    ['the same key', { 'new-ssh-private-key': () => OLD.private }, /^Input "new-ssh-private-key" is the same key as "ssh-private-key" \(SHA256:\S+ \(ED25519\)\): generate a new one/],
    ['a current key that cannot be read', { 'ssh-private-key': 'nope' }, /^Input "ssh-private-key" cannot be used as an SSH private key: .*"ssh-passphrase"/],
    ['an image', { image: 'reg.test/openclaw:v2' }, /^Input "image" does not apply to mode "rotate-key"/]
  ])('refuses %s before any connection, naming the input', (_name, over, message) => {
    const inputs = Object.fromEntries(Object.entries(over).map(([k, v]) => [k, typeof v === 'function' ? v() : v]))
    const found = problems({ mode: 'rotate-key', 'ssh-private-key': OLD.private, 'new-ssh-private-key': NEW.private, ...inputs })
    expect(found).toEqual([expect.stringMatching(message)])
    // no message shows a key's text
    for (const key of [OLD, NEW, ENCRYPTED]) expect(found.join('\n')).not.toContain(key.private.split('\n')[1])
  })

  it('new-ssh-private-key in another mode is a mistake', () => {
    expect(problems({ 'ssh-private-key': 'k', 'new-ssh-private-key': NEW.private })).toEqual([expect.stringMatching(/^Input "new-ssh-private-key" only applies to mode "rotate-key"/)])
  })

  it('a dry run shows the plan with both fingerprints, without ssh-private-key too', () => {
    const settings = rotation({ 'dry-run': 'true' })
    const server = makeServer('acme-1', 'acme', undefined, { jump: { host: 'bastion.test', port: 22, user: 'ops', hostKeys: [] } })
    const plan = formatPlan(buildPlan({ selected: [server], disabled: [] }, settings), settings)
    const { next, current } = settings.keyRotation!
    expect(plan).toContain(`rotate-key (deploy key ${current!.fingerprint} (ED25519) → ${next.fingerprint} (ECDSA); image unchanged)`)
    expect(plan).toMatch(/Jump hosts are not changed/)
    const without = read({ mode: 'rotate-key', 'dry-run': 'true', 'new-ssh-private-key': NEW.private })
    expect(formatPlan(buildPlan({ selected: [server], disabled: [] }, without), without)).toContain(`(deploy key of ssh-private-key → ${next.fingerprint} (ECDSA); image unchanged)`)
  })
})

/**
 * A server on this machine: a home with ~/.ssh/authorized_keys, reached through a stand-in for
 * sshd (see the file's head). Its shells run each step in a local bash with that HOME.
 */
class LocalServer {
  readonly home = temp('openclaw-keys-home-')
  /** Key types the stand-in sshd accepts (PubkeyAcceptedAlgorithms); all when empty. */
  accepted: string[] = []
  /** Where else it reads keys from (as AuthorizedKeysFile ~/.ssh/authorized_keys ~/.ssh/authorized_keys2 would). */
  alsoReads?: string
  logins: string[] = []
  steps: string[] = []
  constructor(authorized?: string) {
    mkdirSync(join(this.home, '.ssh'))
    if (authorized !== undefined) writeFileSync(this.file, authorized)
  }
  get file(): string {
    return join(this.home, '.ssh', 'authorized_keys')
  }
  get keys(): string {
    return readFileSync(this.file, 'utf8')
  }
  login(privateKey: string): RemoteShell {
    const key = publicKeyOf(privateKey)
    const words = `${key.type} ${key.blob}`
    const held = [this.file, ...(this.alsoReads ? [this.alsoReads] : [])].some(file => {
      try {
        return readFileSync(file, 'utf8')
          .split('\n')
          .some(line => (!line.trimStart().startsWith('#') && line.includes(` ${words}`)) || line.startsWith(words))
      } catch {
        return false
      }
    })
    const allowed = this.accepted.length === 0 || this.accepted.includes(key.type)
    this.logins.push(`${key.label}:${held && allowed ? 'ok' : 'refused'}`)
    if (!held || !allowed)
      throw new ConnectError(
        `${USER}@local:22 did not accept the SSH key (check the deploy user's authorized_keys and ssh-private-key)`,
        'auth',
        'target',
        'All configured authentication methods failed'
      )
    return {
      run: async (command: RemoteCommand, timeout: number): Promise<CommandResult> => {
        this.steps.push(command.step)
        const out = spawnSync('bash', ['-c', renderCommand(command, timeout)], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: this.home } })
        return { code: out.status ?? 255, stdout: out.stdout.trim(), stderr: out.stderr.trim() }
      },
      close: () => undefined
    }
  }
}

function server(name: string): Server {
  return makeServer(name, `t-${name}`, undefined, { host: `${name}.test`, user: USER })
}

function context(settings: Settings, servers: Record<string, LocalServer>): RunContext {
  return {
    settings,
    signal: new AbortController().signal,
    lockHolder: 'test token=abc',
    lockToken: 'abc',
    runLabel: 'test',
    connect: async (srv, _signal, key) => servers[srv.name]!.login(key?.privateKey ?? settings.sshPrivateKey)
  }
}

const restricted = (words: string, comment: string) => `restrict,from="10.0.0.1, 10.0.0.2",command="exec sh -c \\"$SSH_ORIGINAL_COMMAND\\"" ${words} ${comment}`

describe('one server', () => {
  it('rotates: the new key with the same options, proven on a second login, then the old key removed and refused', async () => {
    const before = `# keys of the deploy user\n${restricted(OLD.words, 'openclaw-deploy')}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther admin@laptop\n`
    const box = new LocalServer(before)
    const settings = rotation()
    const result = await runServer(server('a'), context(settings, { a: box }))
    expect([result.status, result.error]).toEqual(['rotated', undefined])
    expect(box.keys).toMatch(
      new RegExp(
        `^# keys of the deploy user\\n${escape(restricted(NEW.words, 'openclaw-deploy rotated '))}\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther admin@laptop\\n$`
      )
    )
    // old key, new key (the proof), and the old key once more (refused now)
    expect(box.logins).toEqual(['ED25519:ok', 'ECDSA:ok', 'ED25519:refused'])
    expect(box.steps).toEqual(['keys-add', 'keys-login', 'keys-remove'])
    expect(result.log).toContain('the current key is refused now')
    expect(JSON.stringify(result)).not.toContain(NEW.private.split('\n')[1])
  })

  it('again on a rotated server: unchanged, nothing written', async () => {
    const box = new LocalServer(`restrict ${OLD.words} x\n`)
    await runServer(server('a'), context(rotation(), { a: box }))
    const rotated = box.keys
    box.logins = []
    box.steps = []
    const again = await runServer(server('a'), context(rotation(), { a: box }))
    expect([again.status, again.error]).toEqual(['unchanged', undefined])
    expect(box.keys).toBe(rotated)
    expect(box.logins).toEqual(['ED25519:refused', 'ECDSA:ok'])
    expect(box.steps).toEqual(['keys-check', 'keys-login'])
  })

  it('after a run that stopped between adding the new key and removing the old one: finishes, with no second line', async () => {
    const box = new LocalServer(`restrict ${OLD.words} x\nrestrict ${NEW.words} openclaw-deploy rotated 2026-01-01T00:00:00Z\n`)
    const result = await runServer(server('a'), context(rotation(), { a: box }))
    expect(result.status).toBe('rotated')
    expect(box.keys).toBe(`restrict ${NEW.words} openclaw-deploy rotated 2026-01-01T00:00:00Z\n`)
    expect(result.log).toContain(`the new key ${rotation().keyRotation!.next.fingerprint} (ECDSA) has a line in authorized_keys already: nothing added`)
  })

  it('a server that refuses the new key keeps the old one, without the new line', async () => {
    const before = `${restricted(OLD.words, 'openclaw-deploy')}\n`
    const box = new LocalServer(before)
    box.accepted = ['ssh-ed25519']
    const result = await runServer(server('a'), context(rotation(), { a: box }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(
      /^the new key SHA256:\S+ \(ECDSA\) could not log in: \S+@a\.test:22 refused it \(All configured authentication methods failed\): does its sshd accept ECDSA keys \(PubkeyAcceptedAlgorithms in sshd_config\)\?; the new key's line this action added was removed again, and the current key \(ssh-private-key\) still works$/
    )
    expect(box.keys).toBe(before)
    expect(box.steps).toEqual(['keys-add', 'keys-undo'])
    // and the old key still logs in
    expect(() => box.login(OLD.private)).not.toThrow()
  })

  it('a server whose sshd reads the key from elsewhere: reported, nothing changed', async () => {
    const box = new LocalServer(`${NEW.words.replace(/.$/, 'x')} unrelated\n`)
    box.alsoReads = join(box.home, 'elsewhere')
    writeFileSync(box.alsoReads, `${OLD.words}\n`)
    const before = box.keys
    const result = await runServer(server('a'), context(rotation(), { a: box }))
    expect(result).toMatchObject({ status: 'failed', failedStep: 'keys-add' })
    expect(result.error).toMatch(/^keys-add failed: \S+authorized_keys holds no line for the current key, yet it logged in as .*rotate the key there by hand\. Nothing was changed/)
    expect(box.keys).toBe(before)
  })

  it('the old key still logging in after its line went (a second keys file) is a failure that says so', async () => {
    const box = new LocalServer(`${OLD.words}\n`)
    box.alsoReads = join(box.home, 'authorized_keys2')
    writeFileSync(box.alsoReads, `${OLD.words}\n`)
    const result = await runServer(server('a'), context(rotation(), { a: box }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/still logs in after its lines were removed from ~\/\.ssh\/authorized_keys: .*The new key works; remove the current key there by hand/)
    expect(box.keys).toMatch(new RegExp(`^${escape(NEW.words)} openclaw-deploy rotated \\S+\\n$`))
  })

  it('neither key logs in: failed, nothing changed', async () => {
    const box = new LocalServer('')
    const result = await runServer(server('a'), context(rotation(), { a: box }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/did not accept the SSH key .*; the new key SHA256:\S+ \(ECDSA\) is not accepted either \(All configured authentication methods failed\)\. Nothing was changed$/)
  })
})

describe('a fleet', () => {
  it('three servers, one refusing the new key: the summary and outputs say so, and no private key shows', async () => {
    const boxes = { s1: new LocalServer(`restrict ${OLD.words} d\n`), s2: new LocalServer(`restrict ${OLD.words} d\n`), s3: new LocalServer(`restrict ${OLD.words} d\n`) }
    boxes.s2.accepted = ['ssh-ed25519']
    const settings = rotation()
    const results = await runFleet(['s1', 's2', 's3'].map(server), context(settings, boxes))
    expect(results.map(r => r.status)).toEqual(['rotated', 'failed', 'rotated'])
    const summary = renderSummary(results, settings, {})
    expect(summary).toMatch(/^## OpenClaw deploy key rotation to `SHA256:\S+ \(ECDSA\)`/)
    expect(summary).toContain('3 servers: 🔑 2 rotated · ❌ 1 failed')
    expect(summary).toMatch(/\| t-s2 \| s2 \| {2}\| ❌ failed \|/)
    setOutputs(results)
    const outputs = Object.fromEntries(core.setOutput.mock.calls.map(([name, value]) => [name, String(value)]))
    expect(outputs).toMatchObject({ deployed: '2', failed: '1' })
    for (const text of [summary, outputs.results!]) {
      for (const key of [OLD, NEW]) for (const line of key.private.split('\n').filter(l => l.length > 20)) expect(text).not.toContain(line)
    }
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
