import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import * as commands from '../../src/remote/commands.js'
import { quote, shellJoin } from '../../src/remote/shell.js'
import { tempDirs } from './fixtures/temp.js'

/** What a real bash makes of a command line: its words, split on NUL. */
function bashWords(commandLine: string): string[] {
  const out = spawnSync('bash', ['-c', `printf '%s\\0' ${commandLine}`], { encoding: 'utf8' })
  expect(out.status).toBe(0)
  return out.stdout.split('\0').slice(0, -1)
}

// Any text a registry or an input could carry: ASCII control and shell characters, and Unicode.
const hostile = fc
  .oneof(
    fc.string({ unit: 'binary-ascii', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.constantFrom("'", '"', '`id`', '$(id)', '${HOME}', '; rm -rf /', '\n', '-rf', '*', '~', '!', '\\', 'a\'b"c', '')
  )
  .filter(s => !s.includes('\0'))

describe('quote', () => {
  it('keeps plain words readable', () => {
    expect(quote('ghcr.io/acme/openclaw:1.2.3')).toBe('ghcr.io/acme/openclaw:1.2.3')
    expect(quote("it's")).toBe(`'it'\\''s'`)
    expect(quote('')).toBe("''")
  })

  it('rejects a NUL byte, which no shell argument can hold', () => {
    expect(() => quote('a\0b')).toThrow(/NUL/)
  })

  it('gives bash back every word byte for byte', () => {
    fc.assert(
      fc.property(fc.array(hostile, { minLength: 1, maxLength: 6 }), words => {
        expect(bashWords(shellJoin(words))).toEqual(words)
      }),
      { numRuns: 300 }
    )
  })
})

describe('remote commands', () => {
  const builders: Array<[string, (v: string, w: string) => commands.RemoteCommand]> = [
    ['takeLock', (v, w) => commands.takeLock(v, w, 30)],
    ['releaseLock', (v, w) => commands.releaseLock(v, w)],
    ['preflight', (v, w) => commands.preflight(v, w)],
    ['pullImage', v => commands.pullImage(v)],
    ['inspectImage', v => commands.inspectImage(v)],
    ['recordRollback', (v, w) => commands.recordRollback(v, w, { image: w, imageId: v }, w, v)],
    ['readRollbackRecord', v => commands.readRollbackRecord(v)],
    ['restoreRollbackRecord', (v, w) => commands.restoreRollbackRecord(v, w)],
    ['retagImage', (v, w) => commands.retagImage(v, w)],
    ['setEnvVariables', (v, w) => commands.setEnvVariables(v, { OPENCLAW_IMAGE: w }, v)],
    ['restoreEnvFile', (v, w) => commands.restoreEnvFile(v, w)],
    ['composeUp', (v, w) => commands.composeUp(v, [w, v], 'OPENCLAW_IMAGE')],
    ['composeStop', (v, w) => commands.composeStop(v, [w, v], 'OPENCLAW_IMAGE')],
    ['healthCheck', (v, w) => commands.healthCheck(v, w, 60, [w])],
    ['pruneImages', (v, w) => commands.pruneImages(v, w, [w, v])],
    ['appendHistory', (v, w) => commands.appendHistory(v, w)],
    ['statusProbe', (v, w) => commands.statusProbe(v, 'OPENCLAW_IMAGE', w, [w, v])],
    [
      'sequence',
      (v, w) =>
        commands.sequence(
          'pull+write-env+up',
          [
            { command: commands.pullImage(v), seconds: 5 },
            { command: commands.setEnvVariables(w, { OPENCLAW_IMAGE: v }, w), seconds: 6 },
            { command: commands.composeUp(w, [v], 'OPENCLAW_IMAGE'), seconds: 7 }
          ],
          'failure'
        )
    ]
  ]
  const leasedScript = (v: string, w: string) => bashWords(commands.renderCommand(commands.withLease(v, w, commands.pullImage(v)), 1))[6]!

  it.each(builders)('%s: no value changes the shape of the command bash runs', (_name, build) => {
    fc.assert(
      fc.property(hostile, hostile, (v, w) => {
        const command = build(v, w)
        const words = bashWords(commands.renderCommand(command, 42))
        // The script is a constant and the values arrive as its positional parameters, untouched.
        expect(words).toEqual(['timeout', '-k', '5', '42', 'bash', '-c', build('x', 'y').script, `openclaw-${command.step}`, ...command.args])
      }),
      { numRuns: 60 }
    )
  })

  it('a step under the lock renews the lease first: the values still arrive untouched, after the lease arguments', () => {
    fc.assert(
      fc.property(hostile, hostile, (v, w) => {
        const inner = commands.composeUp(v, [w], 'OPENCLAW_IMAGE')
        const words = bashWords(commands.renderCommand(commands.withLease(w, v, inner), 42))
        const constant = bashWords(commands.renderCommand(commands.withLease('x', 'y', commands.composeUp('x', ['y'], 'OPENCLAW_IMAGE')), 42))[6]
        expect(words).toEqual(['timeout', '-k', '5', '42', 'bash', '-c', constant, 'openclaw-up', commands.stateDir(w), v, String(42 + 5 + 30), ...inner.args])
      }),
      { numRuns: 60 }
    )
  })

  it('a step that switches the server also waits for the switch lock: the values still arrive untouched', () => {
    fc.assert(
      fc.property(hostile, hostile, (v, w) => {
        const inner = commands.setEnvVariables(v, { OPENCLAW_IMAGE: w }, v)
        const render = (c: commands.RemoteCommand) => bashWords(commands.renderCommand(commands.withLease(w, v, commands.exclusive(w, c, 7)), 20))
        const words = render(inner)
        expect(words).toEqual([
          'timeout',
          '-k',
          '5',
          '20',
          'bash',
          '-c',
          render(commands.setEnvVariables('x', { OPENCLAW_IMAGE: '' }, 'x'))[6],
          'openclaw-write-env',
          commands.stateDir(w),
          v,
          '55',
          commands.stateDir(w),
          '13',
          '7',
          ...inner.args
        ])
      }),
      { numRuns: 60 }
    )
  })

  it('every script is valid bash', () => {
    for (const script of [...builders.map(([, build]) => build('/srv/app', 'x').script), leasedScript('/srv/app', 'x')]) {
      const out = spawnSync('bash', ['-n', '-c', script], { encoding: 'utf8' })
      expect(out.stderr).toBe('')
      expect(out.status).toBe(0)
    }
  })

  it('parses key=value facts and ignores other output', () => {
    const facts = commands.parseFacts('noise\nimage_id=sha256:abc\ncontainer=a|b\ncontainer=c|d\nWeird Key=x\n')
    expect(facts.get('image_id')).toEqual(['sha256:abc'])
    expect(facts.get('container')).toEqual(['a|b', 'c|d'])
    expect(facts.has('Weird Key')).toBe(false)
  })
})

const tempDir = tempDirs()

/** Runs a command's script in a local bash, as sshd would (without the remote timeout). */
function runLocally(command: commands.RemoteCommand, env: NodeJS.ProcessEnv = process.env) {
  const out = spawnSync('bash', ['-c', command.script, `openclaw-${command.step}`, ...command.args], { encoding: 'utf8', env, input: command.stdin })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: commands.parseFacts(out.stdout) }
}

describe('what the scripts do', () => {
  it('refuses to lock in a deployment folder that does not exist, and creates nothing there', () => {
    const root = tempDir('openclaw-lock-')
    const missing = join(root, 'openclaw-prd-typo')
    const refused = runLocally(commands.takeLock(missing, 'run 1', 0))
    expect(refused.code).toBe(3)
    expect(refused.facts.get('error')?.[0]).toMatch(new RegExp(`^deployment folder ${missing} does not exist on \\S+: set the server's path in the registry`))
    expect(existsSync(missing)).toBe(false)

    const locked = runLocally(commands.takeLock(root, 'run 1', 0))
    expect(locked).toMatchObject({ code: 0 })
    expect(locked.facts.get('locked')).toEqual(['yes'])
    expect(existsSync(join(root, '.openclaw-deploy', 'lock', 'holder'))).toBe(true)
    // held by another run: exit 4
    expect(runLocally(commands.takeLock(root, 'run 2', 0)).code).toBe(4)
  })

  describe('writing .env', () => {
    const setImage = (project: string) => commands.setEnvVariables(project, { OPENCLAW_IMAGE: 'reg.test/openclaw:v2' }, 'run-1')
    const next = 'OPENCLAW_IMAGE=reg.test/openclaw:v2\nTOKEN=x\n'
    /** A project folder with the state folder the lock step makes. */
    function project(root = tempDir('openclaw-env-')): string {
      mkdirSync(join(root, '.openclaw-deploy'), { recursive: true })
      return root
    }

    it('replaces a regular .env, keeping its mode and leaving no temporary file; restore puts it back', () => {
      const dir = project()
      writeFileSync(join(dir, '.env'), 'OPENCLAW_IMAGE=reg.test/openclaw:v1\nTOKEN=x\n', { mode: 0o600 })
      expect(runLocally(setImage(dir))).toMatchObject({ code: 0, stdout: 'written=OPENCLAW_IMAGE\n' })
      expect(readFileSync(join(dir, '.env'), 'utf8')).toBe(next)
      expect(statSync(join(dir, '.env')).mode & 0o777).toBe(0o600)
      expect(readdirSync(dir).sort()).toEqual(['.env', '.openclaw-deploy'])
      expect(statSync(join(dir, '.openclaw-deploy', 'env.before')).mode & 0o777).toBe(0o600)
      // another run's restore does nothing; this run's puts the file back and only once
      expect(runLocally(commands.restoreEnvFile(dir, 'run-2')).stdout).toBe('restored=none\n')
      expect(runLocally(commands.restoreEnvFile(dir, 'run-1')).stdout).toBe('restored=yes\n')
      expect(readFileSync(join(dir, '.env'), 'utf8')).toBe('OPENCLAW_IMAGE=reg.test/openclaw:v1\nTOKEN=x\n')
      expect(runLocally(commands.restoreEnvFile(dir, 'run-1')).stdout).toBe('restored=none\n')
      // the copy, and the values it held, are gone once put back
      expect(readdirSync(join(dir, '.openclaw-deploy'))).toEqual([])
    })

    it("removes the copy of the old .env once its run's deploy is healthy, and only that run's copy", () => {
      const dir = project()
      writeFileSync(join(dir, '.env'), 'OPENCLAW_IMAGE=reg.test/openclaw:v1\nTOKEN=old-secret\n', { mode: 0o600 })
      expect(runLocally(setImage(dir)).code).toBe(0)
      expect(runLocally(commands.forgetEnvCopy(dir, 'run-2')).stdout).toBe('forgotten=none\n')
      expect(readFileSync(join(dir, '.openclaw-deploy', 'env.before'), 'utf8')).toContain('old-secret')
      expect(runLocally(commands.forgetEnvCopy(dir, 'run-1')).stdout).toBe('forgotten=yes\n')
      expect(readdirSync(join(dir, '.openclaw-deploy'))).toEqual([])
      expect(readFileSync(join(dir, '.env'), 'utf8')).toBe('OPENCLAW_IMAGE=reg.test/openclaw:v2\nTOKEN=old-secret\n')
      expect(runLocally(commands.forgetEnvCopy(dir, 'run-1')).stdout).toBe('forgotten=none\n')
    })

    it('writes nothing when the value is already there', () => {
      const dir = project()
      writeFileSync(join(dir, '.env'), next)
      expect(runLocally(setImage(dir))).toMatchObject({ code: 0, stdout: 'written=none\n' })
      expect(existsSync(join(dir, '.openclaw-deploy', 'env.before'))).toBe(false)
    })

    it('refuses values that did not arrive whole, and changes nothing', () => {
      const dir = project()
      writeFileSync(join(dir, '.env'), 'OPENCLAW_IMAGE=reg.test/openclaw:v1\n')
      const command = setImage(dir)
      for (const stdin of [command.stdin!.replace(/\nend\n$/, '\n'), command.stdin!.slice(0, 30), command.stdin!.replace(/ [0-9a-f]{64}/, ` ${'0'.repeat(64)}`)]) {
        const refused = runLocally({ ...command, stdin })
        expect(refused.code).toBe(3)
        expect(refused.facts.get('error')?.[0]).toMatch(/did not arrive whole/)
        expect(readFileSync(join(dir, '.env'), 'utf8')).toBe('OPENCLAW_IMAGE=reg.test/openclaw:v1\n')
      }
    })

    it.each([
      ['a relative link', '../secrets/tenant.env'],
      ['an absolute link', 'ABSOLUTE'],
      ['a link to a link', '../secrets/current.env']
    ])('through %s writes the file it leads to, in that folder, and keeps the link', (_kind, link) => {
      const root = tempDir('openclaw-env-')
      const dir = project(join(root, 'openclaw-prd'))
      const secrets = join(root, 'secrets')
      mkdirSync(secrets, { mode: 0o700 })
      const target = join(secrets, 'tenant.env')
      writeFileSync(target, 'OPENCLAW_IMAGE=reg.test/openclaw:v1\nTOKEN=x\n', { mode: 0o640 })
      symlinkSync('tenant.env', join(secrets, 'current.env'))
      const linkText = link === 'ABSOLUTE' ? target : link
      symlinkSync(linkText, join(dir, '.env'))

      const written = runLocally(setImage(dir))
      expect([written.code, written.stdout]).toEqual([0, 'written=OPENCLAW_IMAGE\n'])
      expect(lstatSync(join(dir, '.env')).isSymbolicLink()).toBe(true)
      expect(readlinkSync(join(dir, '.env'))).toBe(linkText)
      expect(lstatSync(join(secrets, 'current.env')).isSymbolicLink()).toBe(true)
      expect(readFileSync(target, 'utf8')).toBe(next)
      expect(statSync(target).mode & 0o777).toBe(0o640)
      expect(readdirSync(secrets).sort()).toEqual(['current.env', 'tenant.env'])
      expect(readdirSync(dir).sort()).toEqual(['.env', '.openclaw-deploy'])
      expect(runLocally(commands.restoreEnvFile(dir, 'run-1')).stdout).toBe('restored=yes\n')
      expect(readFileSync(target, 'utf8')).toBe('OPENCLAW_IMAGE=reg.test/openclaw:v1\nTOKEN=x\n')
      expect(lstatSync(join(dir, '.env')).isSymbolicLink()).toBe(true)
      expect(statSync(target).mode & 0o777).toBe(0o640)
    })

    it('refuses a link that leads nowhere, and changes nothing', () => {
      const dir = project()
      symlinkSync('../no-such-secrets/tenant.env', join(dir, '.env'))
      const refused = runLocally(setImage(dir))
      expect(refused.code).toBe(3)
      expect(refused.facts.get('error')).toEqual([`the link .env in ${dir} does not lead to a file`])
      expect(readdirSync(dir).sort()).toEqual(['.env', '.openclaw-deploy'])
    })
  })

  describe("a failed pull carries Docker's reason", () => {
    /** A `docker` that fails `pull` with the given stderr. */
    function dockerFailingWith(stderr: string): NodeJS.ProcessEnv {
      const bin = tempDir('openclaw-docker-')
      writeFileSync(join(bin, 'stderr'), stderr)
      writeFileSync(join(bin, 'docker'), `#!/bin/sh\ncat '${join(bin, 'stderr')}' >&2\nexit 1\n`)
      chmodSync(join(bin, 'docker'), 0o755)
      return { ...process.env, PATH: `${bin}:${process.env.PATH}` }
    }

    it.each([
      ['manifest unknown', 'Error response from daemon: manifest for reg.test/openclaw:nope not found: manifest unknown: manifest unknown\n'],
      ['unauthorized', 'Error response from daemon: Head "https://ghcr.io/v2/acme/openclaw/manifests/1.2": unauthorized\n'],
      ['no such host', 'Error response from daemon: Get "https://reg.tset/v2/": dial tcp: lookup reg.tset on 127.0.0.53:53: no such host\n']
    ])('%s', (words, stderr) => {
      const pulled = runLocally(commands.pullImage('reg.test/openclaw:nope'), dockerFailingWith(stderr))
      expect(pulled.code).toBe(3)
      expect(pulled.facts.get('error')).toEqual([expect.stringMatching(new RegExp(`^docker pull reg.test/openclaw:nope failed: Error response from daemon: .*${words}`))])
    })

    it('keeps the last meaningful lines, not layer progress, on one bounded line', () => {
      const progress = Array.from({ length: 50 }, (_, i) => `${(i + 0xabc000000000).toString(16)}: Downloading`).join('\n')
      const stderr = `${progress}\n\nfirst line\n  \nnet/http: TLS handshake timeout ${'x'.repeat(1000)}\n`
      const [error] = runLocally(commands.pullImage('reg.test/openclaw:v2'), dockerFailingWith(stderr)).facts.get('error') ?? []
      expect(error).toMatch(/^docker pull reg.test\/openclaw:v2 failed: first line net\/http: TLS handshake timeout x+$/)
      expect(error).not.toMatch(/Downloading/)
      expect(error!.length).toBeLessThan(500)
    })

    it('says so when Docker gives no reason', () => {
      const [error] = runLocally(commands.pullImage('reg.test/openclaw:v2'), dockerFailingWith('')).facts.get('error') ?? []
      expect(error).toBe('docker pull reg.test/openclaw:v2 failed: docker gave no reason')
    })
  })

  it('appends a history line once, also when the last channel is sent again after a lost connection', () => {
    const state = join(tempDir('openclaw-history-'), '.openclaw-deploy')
    mkdirSync(state)
    const line = '2026-12-01T17:00:00.000Z\tdeployed\treg.test/openclaw:v1 -> reg.test/openclaw:v2\trun 7 by alice'
    expect(runLocally(commands.appendHistory(join(state, '..'), line)).stdout).toBe('appended=yes\n')
    expect(runLocally(commands.appendHistory(join(state, '..'), line)).stdout).toBe('appended=already\n')
    // the same deploy outcome in another run (another time, another label) is a line of its own
    const next = line.replace('17:00:00', '17:05:00')
    expect(runLocally(commands.appendHistory(join(state, '..'), next)).stdout).toBe('appended=yes\n')
    expect(readFileSync(join(state, 'history.log'), 'utf8')).toBe(`${line}\n${next}\n`)
  })

  describe('stopping what a first deploy started (composeStop)', () => {
    /** A project folder, and a `docker` that records its arguments and exits with `code`, printing `said`. */
    function stopIn(code: number, said = '') {
      const dir = tempDir('openclaw-stop-')
      writeFileSync(join(dir, '.env'), 'OPENCLAW_IMAGE=reg.test/openclaw:v1\nOPENAI_API_KEY=sk-very-secret\n')
      const bin = tempDir('openclaw-docker-')
      writeFileSync(join(bin, 'docker'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${join(bin, 'args')}'\nprintf '%s\\n' '${said}' >&2\nexit ${code}\n`)
      chmodSync(join(bin, 'docker'), 0o755)
      const ran = runLocally(commands.composeStop(dir, ['openclaw-gateway', '-t0'], 'OPENCLAW_IMAGE'), { ...process.env, PATH: `${bin}:${process.env.PATH}` })
      return { ...ran, args: readFileSync(join(bin, 'args'), 'utf8').trim().split('\n') }
    }

    it('stops the services given, as names after --, in the project folder', () => {
      const stopped = stopIn(0)
      expect(stopped).toMatchObject({ code: 0, stdout: 'stopped=yes\n' })
      expect(stopped.args).toEqual(['compose', 'stop', '--', 'openclaw-gateway', '-t0'])
    })

    it("says why it failed in Compose's last line, with no word of .env", () => {
      const failed = stopIn(1, 'error while stopping: sk-very-secret is wrong')
      expect(failed.code).toBe(commands.EXIT_CODE.failed)
      expect(failed.facts.get('error')).toEqual(['docker compose stop failed: error while stopping: [redacted] is wrong '])
      expect(failed.stdout).not.toContain('sk-very-secret')
    })
  })
})

describe('a sequence: several steps in one channel', () => {
  /** A step that prints its arguments (one per line), what it read from stdin, and exits with `code`. */
  const echoStep = (step: string, args: string[], code = 0, stdin?: string): commands.RemoteCommand => ({
    step,
    args,
    stdin,
    script: `for a in "$@"; do printf 'arg=%s\\n' "$a"; done; printf 'stdin=%s\\n' "$(cat | base64 -w0)"; echo "said on stderr by ${step}" >&2; exit ${code}`
  })
  const part = (command: commands.RemoteCommand, seconds = 5) => ({ command, seconds })
  /** Runs it as sshd would, through the rendered command line (remote timeout included). */
  function runSequence(command: commands.RemoteCommand) {
    const out = spawnSync('bash', ['-c', commands.renderCommand(command, commands.sequenceSeconds(command.parts!))], { encoding: 'utf8', input: command.stdin ?? '' })
    return { code: out.status, split: commands.splitSequence(command, { ...out, code: out.status ?? -1 }) }
  }
  const argsOf = (stdout: string) => commands.parseFacts(stdout).get('arg') ?? []

  it('gives each part its own arguments, untouched, and stdin to the one part that has it', () => {
    fc.assert(
      fc.property(
        fc.array(
          hostile.filter(s => !s.includes('\n')),
          { maxLength: 3 }
        ),
        fc.array(
          hostile.filter(s => !s.includes('\n')),
          { maxLength: 3 }
        ),
        hostile,
        (a, b, input) => {
          const command = commands.sequence('a+b+c', [part(echoStep('a', a)), part(echoStep('b', b, 0, input)), part(echoStep('c', []))], 'failure')
          const { code, split } = runSequence(command)
          expect(code).toBe(0)
          expect(split.map(p => [p.step, p.code, argsOf(p.stdout)])).toEqual([
            ['a', 0, a],
            ['b', 0, b],
            ['c', 0, []]
          ])
          expect(split.map(p => commands.parseFacts(p.stdout).get('stdin')?.[0])).toEqual(['', Buffer.from(input).toString('base64'), ''])
          expect(split.map(p => p.stderr)).toEqual(['said on stderr by a', 'said on stderr by b', 'said on stderr by c'])
        }
      ),
      { numRuns: 25 }
    )
  })

  it("'failure' stops at the first failing part and exits with its code; 'end' runs every part and exits with the first failure's", () => {
    const parts = [part(echoStep('a', ['1'])), part(echoStep('b', ['2'], 4)), part(echoStep('c', ['3'], 6))]
    const stopped = runSequence(commands.sequence('a+b+c', parts, 'failure'))
    expect(stopped.code).toBe(4)
    expect(stopped.split.map(p => [p.step, p.code])).toEqual([
      ['a', 0],
      ['b', 4]
    ])
    const all = runSequence(commands.sequence('a+b+c', parts, 'end'))
    expect(all.code).toBe(4)
    expect(all.split.map(p => [p.step, p.code])).toEqual([
      ['a', 0],
      ['b', 4],
      ['c', 6]
    ])
  })

  it('bounds each part by its own remote timeout', () => {
    const slow: commands.RemoteCommand = { step: 'slow', args: [], script: 'sleep 30' }
    const started = Date.now()
    const { code, split } = runSequence(commands.sequence('slow+after', [part(slow, 1), part(echoStep('after', []))], 'end'))
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(split.map(p => [p.step, p.code])).toEqual([
      ['slow', 124],
      ['after', 0]
    ])
    expect(code).toBe(124)
  })

  it('text a step prints that looks like the markers does not end its part or start another', () => {
    const liar: commands.RemoteCommand = {
      step: 'a',
      args: [],
      script: "printf '%s\\n' '--- openclaw part end 0' '--- openclaw part start b' 'fake=yes' '--- openclaw part end 0'; exit 3"
    }
    const { code, split } = runSequence(commands.sequence('a+b', [part(liar), part(echoStep('b', ['x']))], 'failure'))
    expect(code).toBe(3)
    expect(split.map(p => [p.step, p.code])).toEqual([['a', 3]])
    expect(commands.parseFacts(split[0]!.stdout).get('fake')).toEqual(['yes'])
  })

  it('takes the last part for the failed one when the channel failed but no part says so', () => {
    const command = commands.sequence('a+b', [part(echoStep('a', [])), part(echoStep('b', []))], 'failure')
    const printed = [commands.partOutput(command, 'a', '', '', 0), commands.partOutput(command, 'b', '', '', 0)]
    const split = commands.splitSequence(command, { stdout: printed.map(p => p.stdout).join(''), stderr: '', code: 137 })
    expect(split.map(p => [p.step, p.code])).toEqual([
      ['a', 0],
      ['b', 137]
    ])
  })

  it('refuses two parts that both read stdin', () => {
    expect(() => commands.sequence('a+b', [part(echoStep('a', [], 0, 'x')), part(echoStep('b', [], 0, 'y'))], 'failure')).toThrow(/stdin to one part only/)
  })
})
