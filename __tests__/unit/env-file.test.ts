// The server-side .env editor (commands.setEnvVariables / preflight's reading), run in a local bash
// as sshd would run it, and checked against Docker Compose's own reading of the same files.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import * as commands from '../../src/remote/commands.js'

const IMAGE = 'registry.example/openclaw:v2'
const scratch: string[] = []
afterAll(() => scratch.forEach(dir => rmSync(dir, { recursive: true, force: true })))

function projectWith(env: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'openclaw-env-'))
  scratch.push(dir)
  mkdirSync(join(dir, '.openclaw-deploy'))
  writeFileSync(join(dir, '.env'), env)
  return dir
}

function run(command: commands.RemoteCommand) {
  const out = spawnSync('bash', ['-c', command.script, `openclaw-${command.step}`, ...command.args], { encoding: 'utf8', input: command.stdin })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: commands.parseFacts(out.stdout) }
}

/** Sets OPENCLAW_IMAGE on the server side; returns the new bytes and the step's facts. */
function setImage(env: string | Buffer, image = IMAGE) {
  const dir = projectWith(env)
  const result = run(commands.setEnvVariables(dir, { OPENCLAW_IMAGE: image }, 'run-1'))
  return { ...result, dir, env: readFileSync(join(dir, '.env')) }
}

describe('setting the image variable in .env on the server', () => {
  it.each([
    ['plain', 'OPENCLAW_IMAGE=old:1\n', `OPENCLAW_IMAGE=${IMAGE}\n`],
    ['double quotes', 'OPENCLAW_IMAGE="old:1"\n', `OPENCLAW_IMAGE="${IMAGE}"\n`],
    ['single quotes', "OPENCLAW_IMAGE='old:1'\n", `OPENCLAW_IMAGE='${IMAGE}'\n`],
    ['export prefix and spaces', 'export OPENCLAW_IMAGE = old:1\n', `export OPENCLAW_IMAGE = ${IMAGE}\n`],
    ['inline comment', 'OPENCLAW_IMAGE=old:1  # pinned\n', `OPENCLAW_IMAGE=${IMAGE}  # pinned\n`],
    ['no trailing newline', 'A=1\nOPENCLAW_IMAGE=old:1', `A=1\nOPENCLAW_IMAGE=${IMAGE}`],
    ['CRLF', 'A=1\r\nOPENCLAW_IMAGE=old:1\r\nB=2\r\n', `A=1\r\nOPENCLAW_IMAGE=${IMAGE}\r\nB=2\r\n`],
    ['commented-out line is left alone', '# OPENCLAW_IMAGE=x\nOPENCLAW_IMAGE=old:1\n', `# OPENCLAW_IMAGE=x\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['similar names are left alone', 'OPENCLAW_IMAGE_OLD=a\nOPENCLAW_IMAGE=old:1\nMY_OPENCLAW_IMAGE=b\n', `OPENCLAW_IMAGE_OLD=a\nOPENCLAW_IMAGE=${IMAGE}\nMY_OPENCLAW_IMAGE=b\n`],
    ['last assignment wins, as in compose', 'OPENCLAW_IMAGE=a\nOPENCLAW_IMAGE=b\n', `OPENCLAW_IMAGE=a\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['empty value', 'OPENCLAW_IMAGE=\n', `OPENCLAW_IMAGE=${IMAGE}\n`],
    ['missing: one line is added', 'A=1\n', `A=1\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['missing, no trailing newline', 'A=1', `A=1\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['missing, empty file', '', `OPENCLAW_IMAGE=${IMAGE}\n`],
    [
      'a multi-line value holding an image line is not taken for the variable',
      'NOTE="first\nOPENCLAW_IMAGE=evil:1\nlast"\nOPENCLAW_IMAGE=old:1\n',
      `NOTE="first\nOPENCLAW_IMAGE=evil:1\nlast"\nOPENCLAW_IMAGE=${IMAGE}\n`
    ],
    ['an image line only inside a multi-line value: the variable is added', "NOTE='a\nOPENCLAW_IMAGE=evil:1\n'\n", `NOTE='a\nOPENCLAW_IMAGE=evil:1\n'\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['an escaped quote does not end a double-quoted value', 'NOTE="say \\"hi\nOPENCLAW_IMAGE=evil:1\n"\nOPENCLAW_IMAGE=old:1\n', `NOTE="say \\"hi\nOPENCLAW_IMAGE=evil:1\n"\nOPENCLAW_IMAGE=${IMAGE}\n`]
  ])('%s', (_name, before, after) => {
    const set = setImage(before)
    expect(set.code).toBe(0)
    expect(set.env.toString('latin1')).toBe(after)
    // the file as it was comes back byte for byte
    expect(run(commands.restoreEnvFile(set.dir, 'run-1')).stdout).toBe('restored=yes\n')
    expect(readFileSync(join(set.dir, '.env'), 'latin1')).toBe(before)
  })

  it.each([
    ['double quotes', 'A=1\nOPENCLAW_IMAGE="old:1\nmore"  # note\nB=2\n', `A=1\nOPENCLAW_IMAGE="${IMAGE}"  # note\nB=2\n`],
    ['single quotes, CRLF', "A=1\r\nOPENCLAW_IMAGE='old:1\r\nmore'\r\nB=2\r\n", `A=1\r\nOPENCLAW_IMAGE='${IMAGE}'\r\nB=2\r\n`]
  ])('replaces a quoted value that spans lines (%s) with one line', (_name, before, after) => {
    const set = setImage(before)
    expect(set.code).toBe(0)
    expect(set.env.toString('latin1')).toBe(after)
  })

  it('refuses a variable whose quotes never close, and changes nothing', () => {
    const before = 'A=1\nOPENCLAW_IMAGE="old:1\nB=2\n'
    const set = setImage(before)
    expect(set.code).toBe(3)
    expect(set.facts.get('error')?.[0]).toBe('the quotes of OPENCLAW_IMAGE in .env are never closed (Compose cannot read this .env either); .env is unchanged')
    expect(set.env.toString()).toBe(before)
  })

  it('reads a quote escaped by a backslash as Compose does, in either kind of quotes', () => {
    // Compose: 'a\'b' is one value, a'b; so is "a\"b"; the line after is not an assignment of its own
    for (const q of ["'", '"']) {
      const before = `NOTE=${q}x\\${q}\nOPENCLAW_IMAGE=evil:1\n${q}\nOPENCLAW_IMAGE=old:1\n`
      expect(setImage(before).env.toString()).toBe(before.replace('OPENCLAW_IMAGE=old:1', `OPENCLAW_IMAGE=${IMAGE}`))
    }
  })

  it('keeps every byte outside the value, whatever the other lines hold', () => {
    // Any bytes but newlines and quotes (a quote can open a multi-line value: see the cases above).
    const otherLine = fc.uint8Array({ maxLength: 60 }).map(bytes =>
      Buffer.from(bytes.filter(b => b !== 0 && b !== 0x0a && b !== 0x22 && b !== 0x27))
        .toString('latin1')
        .replace(/^\s*(export\s+)?OPENCLAW_IMAGE\s*=/, 'X=')
    )
    fc.assert(
      fc.property(fc.array(otherLine, { maxLength: 5 }), fc.array(otherLine, { maxLength: 5 }), fc.boolean(), (before, after, newline) => {
        const head = before.map(l => l + '\n').join('')
        const rest = after.map(l => '\n' + l).join('') + (newline ? '\n' : '')
        const file = Buffer.from(`${head}OPENCLAW_IMAGE=old:1${rest}`, 'latin1')
        const set = setImage(file)
        expect(set.code).toBe(0)
        expect(set.env.equals(Buffer.from(`${head}OPENCLAW_IMAGE=${IMAGE}${rest}`, 'latin1'))).toBe(true)
        run(commands.restoreEnvFile(set.dir, 'run-1'))
        expect(readFileSync(join(set.dir, '.env')).equals(file)).toBe(true)
      }),
      { numRuns: 40 }
    )
  })

  it.each([
    ['a space', 'OPENCLAW_IMAGE=old:1\n', 'a b', "OPENCLAW_IMAGE='a b'\n"],
    ['a comment after an unquoted value stays', 'OPENCLAW_IMAGE=old:1  # pinned\n', 'a#b c', "OPENCLAW_IMAGE='a#b c'  # pinned\n"],
    ['export and blanks stay', 'export OPENCLAW_IMAGE = old:1\n', '$HOME', "export OPENCLAW_IMAGE = '$HOME'\n"],
    ['a quote: double quotes', 'OPENCLAW_IMAGE=old:1\n', "it's", 'OPENCLAW_IMAGE="it\'s"\n'],
    ['single quotes kept when the value fits', "OPENCLAW_IMAGE='old:1'\n", 'a"$b\\c', "OPENCLAW_IMAGE='a\"$b\\c'\n"],
    ['single quotes left when it does not', "OPENCLAW_IMAGE='old:1'\n", "it's", 'OPENCLAW_IMAGE="it\'s"\n'],
    ['double quotes kept, with escapes', 'OPENCLAW_IMAGE="old:1"\n', 'a"b\\c$d\ne', 'OPENCLAW_IMAGE="a\\"b\\\\c\\$d\\ne"\n'],
    ['a trailing backslash cannot end single quotes', 'OPENCLAW_IMAGE=old:1\n', 'a b\\', 'OPENCLAW_IMAGE="a b\\\\"\n'],
    ['added in quotes', 'A=1\n', 'x y', "A=1\nOPENCLAW_IMAGE='x y'\n"],
    ['empty', 'OPENCLAW_IMAGE="old:1"\n', '', 'OPENCLAW_IMAGE=""\n']
  ])('writes a value that needs quoting so that Compose reads it back: %s', (_name, before, value, after) => {
    const set = setImage(before, value)
    expect(set.code).toBe(0)
    expect(set.env.toString()).toBe(after)
  })

  it('sets several variables in one write, reports only the changed ones, and keeps one copy for the rollback', () => {
    const before = 'A=same\nB=\'a b\'\nC="x"\n'
    const dir = projectWith(before)
    const write = (values: Record<string, commands.EnvValue>) => run(commands.setEnvVariables(dir, values, 'run-1'))
    const first = write({ A: 'same', B: 'a b', C: 'y', D: 'new one' })
    expect(first.stdout).toBe('written=C D\n')
    expect(readFileSync(join(dir, '.env'), 'utf8')).toBe("A=same\nB='a b'\nC=\"y\"\nD='new one'\n")
    expect(write({ A: 'same', B: 'a b', C: 'y', D: 'new one' }).stdout).toBe('written=none\n')
    // a value that reads the same, written another way, is no change either
    expect(write({ B: 'a b', C: 'y', A: 'same' }).stdout).toBe('written=none\n')
    expect(run(commands.restoreEnvFile(dir, 'run-1')).stdout).toBe('restored=yes\n')
    expect(readFileSync(join(dir, '.env'), 'utf8')).toBe(before)
  })

  it('makes a new token on the server that no output shows: 64 hex digits, another each time', () => {
    const dir = projectWith('OPENCLAW_GATEWAY_TOKEN=old\nB=1\n')
    const tokens = [1, 2].map(() => {
      const r = run(commands.setEnvVariables(dir, { OPENCLAW_GATEWAY_TOKEN: commands.NEW_TOKEN }, 'run-1'))
      expect(r.stdout).toBe('written=OPENCLAW_GATEWAY_TOKEN\n')
      const token = /^OPENCLAW_GATEWAY_TOKEN=([0-9a-f]{64})\nB=1\n$/.exec(readFileSync(join(dir, '.env'), 'utf8'))?.[1]
      expect(token).toBeDefined()
      expect(r.stdout + r.stderr).not.toContain(token!)
      return token
    })
    expect(tokens[0]).not.toBe(tokens[1])
  })

  it('refuses a value that did not arrive whole, naming the variable only', () => {
    const dir = projectWith('A=1\n')
    const command = commands.setEnvVariables(dir, { TOKEN: 'secret-value-1' }, 'run-1')
    const r = run({ ...command, stdin: command.stdin!.replace(/ [0-9a-f]{64}\n/, ` ${'0'.repeat(64)}\n`) })
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('error=the new value of TOKEN did not arrive whole; .env is unchanged\n')
    expect(readFileSync(join(dir, '.env'), 'utf8')).toBe('A=1\n')
  })
})

describe('Docker Compose reads the written file as intended', () => {
  // (docker compose config needs no daemon: this checks our parsing against Compose's own)
  const composeFile = 'services:\n  gateway:\n    image: ${OPENCLAW_IMAGE:-openclaw:local}\n    environment:\n      NOTE: ${NOTE:-}\n      TOKEN: ${TOKEN:-}\n'
  function composeView(dir: string): { image: string; environment: Record<string, string> } {
    writeFileSync(join(dir, 'docker-compose.yml'), composeFile)
    const out = spawnSync('docker', ['compose', 'config', '--format', 'json'], { cwd: dir, encoding: 'utf8' })
    expect(out.stderr).not.toMatch(/error/i)
    const gateway = (JSON.parse(out.stdout) as { services: Record<string, { image: string; environment: Record<string, string> }> }).services.gateway
    return { image: gateway.image, environment: gateway.environment }
  }

  it.each([
    ['plain', 'TOKEN=s3cr3t\nOPENCLAW_IMAGE=old:1\n'],
    ['quoted with a comment', 'OPENCLAW_IMAGE="old:1" # pinned\nTOKEN=\'a b\'\n'],
    ['missing', 'TOKEN=s3cr3t\n'],
    ['inside a multi-line value only', 'NOTE="x\nOPENCLAW_IMAGE=evil:1\ny"\nTOKEN=t\n'],
    ['after a multi-line value', "NOTE='x\nOPENCLAW_IMAGE=evil:1'\nOPENCLAW_IMAGE=old:1\nTOKEN=t"],
    ['CRLF', 'TOKEN=t\r\nOPENCLAW_IMAGE=old:1\r\n']
  ])('%s', (_name, before) => {
    const original = composeView(projectWith(before))
    const set = setImage(before)
    expect(set.code).toBe(0)
    const after = composeView(set.dir)
    expect(after.image).toBe(IMAGE)
    expect(after.environment).toEqual(original.environment)
    // preflight reports what Compose uses (and nothing else of .env)
    const reads = run({ ...commands.preflight(set.dir, 'OPENCLAW_IMAGE'), script: readImageScript() })
    expect(reads.stdout).toBe(`image_var=${IMAGE}\n`)
  })

  it('reads back every value exactly as given, whatever it holds and however the variable was written before', () => {
    // Compose's own reading, not ours: docker compose config prints the environment it would pass
    // (a literal $ as $$). Each case sets five variables at once, each written before in one way.
    // Each case costs a Compose run (~0.3 s): 30 by default; COMPOSE_PROPERTY_RUNS=250 was run too.
    const names = ['V1', 'V2', 'V3', 'V4', 'V5']
    const file = `services:\n  gateway:\n    image: busybox\n    environment:\n${names.map(n => `      ${n}: \${${n}:-}\n`).join('')}`
    const tricky = fc.constantFrom("'", '"', '\\', '$', '#', ' #', ' ', '\t', '\n', '\r', '\r\n', '{', '}', '$HOME', '${V1}', '\\n', '\\$', '=', 'é', '€', '🦀', 'x', '0')
    const value = fc.oneof(
      fc.string({ unit: fc.oneof(tricky, fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), maxLength: 12 }).filter(v => !v.includes('\0')),
      fc.string({ unit: 'binary', maxLength: 8 }).filter(v => !v.includes('\0') && !/[\uD800-\uDFFF]/.test(v))
    )
    const before = fc.constantFrom('absent', 'N=old', "N='old'", 'N="old"', 'export N = old # note', 'N="multi\nline"', "N='a\\'b'")
    fc.assert(
      fc.property(fc.array(fc.tuple(value, before), { minLength: 5, maxLength: 5 }), cases => {
        const env = cases.map(([, b], i) => (b === 'absent' ? '' : b.replace('N', names[i]!) + '\n')).join('') + 'OTHER=kept\n'
        const dir = projectWith(env)
        writeFileSync(join(dir, 'docker-compose.yml'), file)
        const values = Object.fromEntries(cases.map(([v], i) => [names[i]!, v]))
        const set = run(commands.setEnvVariables(dir, values, 'run-1'))
        expect(set.code).toBe(0)
        const out = spawnSync('docker', ['compose', 'config', '--format', 'json'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/nonexistent' } })
        expect(out.stderr).toBe('')
        const environment = (JSON.parse(out.stdout) as { services: { gateway: { environment: Record<string, string> } } }).services.gateway.environment
        expect(Object.fromEntries(names.map(n => [n, environment[n]!.replace(/\$\$/g, '$')]))).toEqual(values)
        // nothing of a value is printed, and writing the same values again changes nothing
        for (const v of Object.values(values)) if (v.length >= 6) expect(set.stdout + set.stderr).not.toContain(v)
        expect(run(commands.setEnvVariables(dir, values, 'run-1')).stdout).toBe('written=none\n')
      }),
      { numRuns: Number(process.env.COMPOSE_PROPERTY_RUNS ?? 30) }
    )
  })

  /** preflight's reading of the variable, without its Docker checks. */
  function readImageScript(): string {
    const script = commands.preflight('x', 'OPENCLAW_IMAGE').script
    const functions = script.slice(0, script.indexOf('image_variable=$2'))
    return `${functions}cd -- "$1" && at=$(env_find "$2" .env) && [ -n "$at" ] && printf 'image_var=%s\\n' "$(env_value "$2" .env)"`
  }
})

describe("what Docker and Compose say is redacted of .env's values, in every form they print a value in", () => {
  /** Runs composeUp in a project with `env`, with a `docker` that fails saying `said`, and the given awk. */
  function upFailing(env: string, said: string, awk: 'mawk' | 'busybox') {
    const dir = projectWith(env)
    const bin = join(dir, 'bin')
    mkdirSync(bin)
    writeFileSync(join(bin, 'said'), said)
    writeFileSync(join(bin, 'docker'), `#!/bin/sh\ncat '${join(bin, 'said')}' >&2\nexit 1\n`)
    writeFileSync(join(bin, 'awk'), awk === 'busybox' ? '#!/bin/sh\nexec busybox awk "$@"\n' : '#!/bin/sh\nexec mawk "$@"\n')
    for (const f of ['docker', 'awk']) chmodSync(join(bin, f), 0o755)
    const command = commands.composeUp(dir, ['openclaw-gateway'], 'OPENCLAW_IMAGE')
    // (a timeout: a redaction that never ends must fail the test, not hang it)
    const out = spawnSync('bash', ['-c', command.script, 'openclaw-up', ...command.args], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, timeout: 20_000 })
    return { code: out.status, printed: out.stdout + out.stderr }
  }

  const hex = (n: number, digits: number) => n.toString(16).padStart(digits, '0')
  /** `value` as is, as JSON writes it, as Go's encoding/json (<, >, & escaped), and ASCII-only as Python's json and Go's %+q. */
  function forms(value: string): string[] {
    const json = JSON.stringify(value).slice(1, -1)
    const html = json.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
    const ascii = (text: string, goAstral: boolean) =>
      [...text]
        .map(c => {
          const cp = c.codePointAt(0)!
          if (cp < 128) return c
          if (cp > 0xffff && goAstral) return `\\U${hex(cp, 8)}`
          return [...Array(c.length).keys()].map(i => `\\u${hex(c.charCodeAt(i), 4)}`).join('')
        })
        .join('')
    return [...new Set([value, json, html, ascii(json, false), ascii(html, false), ascii(json, true), ascii(html, true)])]
  }
  /** A message quoting every form of every value, between words of its own. */
  const message = (values: string[]) => values.flatMap(v => forms(v).map(f => `error: invalid value "${f}" for x; ${f}\n`)).join('')

  const VALUES = ['abcd', 'p<a>&ss', 'pässwörd', 'key🦀key', 'back\\slash', 'ünï', 'tok€n']
  it.each(['mawk', 'busybox'] as const)('redacts values of 4 or more bytes as they are and escaped, in lines that keep their own words (%s)', awk => {
    const env = `OPENCLAW_IMAGE=reg.test/openclaw:v2\n${VALUES.map((v, i) => `SECRET_${i}='${v}'\n`).join('')}WORDS="two words here"\n`
    const { code, printed } = upFailing(env, message([...VALUES, 'words', 'here']), awk)
    expect(code).toBe(3)
    for (const v of [...VALUES, 'words', 'here']) for (const form of forms(v)) expect({ form, printed: printed.includes(form) }).toEqual({ form, printed: false })
    expect(printed).toContain('error: invalid value "[redacted]" for x; [redacted]')
    expect(printed).toMatch(/^error=docker compose up failed: /m)
    // the image is not a secret, and words of 3 bytes or fewer are left
    expect(upFailing(env, 'pulling reg.test/openclaw:v2 for two\n', awk).printed).toContain('pulling reg.test/openclaw:v2 for two')
  })

  it.each(['mawk', 'busybox'] as const)('redacts a whole value made of short words, as well as each long word alone (%s)', awk => {
    const env = 'A=ab=cd=ef\nB="my cat is fat"\nC=\'one longword\'\n'
    const { code, printed } = upFailing(env, 'saw ab=cd=ef, "my cat is fat" and longword\n', awk)
    expect(code).toBe(3)
    expect(printed).toContain('saw [redacted], "[redacted]" and [redacted]')
  })

  it('ends, and redacts, when a value is a part of the word [redacted] itself', () => {
    const { code, printed } = upFailing("A='redacted'\nB='dact'\nC='[red'\n", 'it said redacted and dact and [red\n', 'mawk')
    expect(code).toBe(3)
    expect(printed).toContain('it said [redacted] and [redacted] and [redacted]')
  })

  it('redacts any value of 4 or more characters in all its forms (property)', () => {
    const unit = fc.constantFrom(...'aZ09_-.:/@+<>&\\é€ßü🦀😀中 =')
    // (a value's outer blanks are not part of it in .env)
    const value = fc.string({ unit, minLength: 4, maxLength: 12 }).filter(v => v.trim() === v)
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 3 }), fc.constantFrom('mawk', 'busybox' as const), (values, awk) => {
        const env = values.map((v, i) => `S${i}='${v}'\n`).join('')
        const { code, printed } = upFailing(env, message(values), awk as 'mawk' | 'busybox')
        expect(code).toBe(3)
        for (const v of values) for (const form of forms(v)) expect({ form, printed: printed.includes(form) }).toEqual({ form, printed: false })
      }),
      { numRuns: 60 }
    )
  })
})
