// The server-side .env editor (commands.setEnvVariables / preflight's reading), run in a local bash
// as sshd would run it, and checked against Docker Compose's own reading of the same files.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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

  it('refuses an image variable whose quoted value spans lines, and changes nothing', () => {
    const before = 'OPENCLAW_IMAGE="old:1\nmore"\n'
    const set = setImage(before)
    expect(set.code).toBe(3)
    expect(set.facts.get('error')?.[0]).toMatch(/OPENCLAW_IMAGE in \.env is quoted and spans several lines/)
    expect(set.env.toString()).toBe(before)
  })

  it('keeps every byte outside the value, whatever the other lines hold', () => {
    // Any bytes but newlines and quotes (a quote can open a multi-line value: see the cases above).
    const otherLine = fc
      .uint8Array({ maxLength: 60 })
      .map(bytes => Buffer.from(bytes.filter(b => b !== 0 && b !== 0x0a && b !== 0x22 && b !== 0x27)).toString('latin1').replace(/^\s*(export\s+)?OPENCLAW_IMAGE\s*=/, 'X='))
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

  it('refuses a value it would have to quote, rather than write one Compose reads otherwise', () => {
    for (const value of ['a b', 'a#b', '$HOME', "it's"]) {
      const set = setImage('OPENCLAW_IMAGE=old:1\n', value)
      expect(set.code).toBe(3)
      expect(set.env.toString()).toBe('OPENCLAW_IMAGE=old:1\n')
    }
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

  /** preflight's reading of the variable, without its Docker checks. */
  function readImageScript(): string {
    const script = commands.preflight('x', 'OPENCLAW_IMAGE').script
    const functions = script.slice(0, script.indexOf('image_variable=$2'))
    return `${functions}cd -- "$1" && at=$(env_find "$2" .env) && [ -n "$at" ] && printf 'image_var=%s\\n' "$(env_value "$2" .env)"`
  }
})
