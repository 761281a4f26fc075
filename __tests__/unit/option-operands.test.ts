// The `--` rule (DESIGN.md "Trust"; issue 12): every remote script passes `--` before a positional
// value a program could read as an option. Each script of src/remote/commands.ts runs in a real bash,
// with its values starting with `-`, and stand-ins on PATH for the programs it calls (a fake `docker`
// and `curl`; the others record their arguments and run the real program): wherever a program was
// given such a value, or a path made from one, a `--` came before it.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import * as commands from '../../src/remote/commands.js'
import { tempDirs } from './fixtures/temp.js'

const tempDir = tempDirs()

/** Programs the scripts run (besides docker and curl, faked), each recorded and then run for real. */
const RECORDED = [
  'awk',
  'base64',
  'basename',
  'cat',
  'cp',
  'cut',
  'date',
  'dirname',
  'find',
  'flock',
  'grep',
  'head',
  'id',
  'mkdir',
  'mktemp',
  'mv',
  'od',
  'readlink',
  'rm',
  'sed',
  'sha256sum',
  'sleep',
  'stat',
  'tail',
  'tr',
  'wc',
  'xargs'
]

/** Writes its arguments, NUL-separated, to a file of its own in $OPENCLAW_CALLS (shell builtins only: no recorded program). */
const RECORD = (name: string) => `f="$OPENCLAW_CALLS/$$"
while [ -e "$f" ]; do f="$f+"; done
printf '%s\\000' ${name} "$@" > "$f"
`

/** A docker that answers what the scripts ask as a server with one running gateway would. */
const DOCKER = `case "$*" in
  info*) echo 27.0.0 ;;
  "compose version"*) echo 'Docker Compose version v2.29.0' ;;
  "compose config"*) printf 'name: p\\nservices:\\n  openclaw-gateway:\\n    image: \${OPENCLAW_IMAGE}\\n    restart: unless-stopped\\n' ;;
  "compose ps"* | "ps "*) echo cid1 ;;
  "inspect --format {{.Image}}"*) echo sha256:bbbb ;;
  inspect*) echo 'openclaw-gateway|reg.test/openclaw:v1|sha256:aaaa|running|false|0|0|unless-stopped' ;;
  "image inspect --format"*) echo sha256:cccc ;;
  *login*) cat >/dev/null ;;
esac
exit 0
`

/** A folder with the stand-ins, to put first on PATH. */
function standIns(): string {
  const bin = tempDir('openclaw-operands-bin-')
  const write = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${RECORD(name)}${body}`)
    chmodSync(join(bin, name), 0o755)
  }
  for (const name of RECORDED) {
    const real = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()
    expect(real).toMatch(/^\//)
    write(name, `exec ${real} "$@"\n`)
  }
  write('docker', DOCKER)
  write('curl', 'printf 200\n')
  return bin
}
const bin = standIns()

/**
 * A server's deployment folder at the relative path `value` (so that the path itself starts with `-`)
 * in a fresh folder, with everything the scripts read: compose file, .env, the rollback record and
 * its earlier copy, the image list, the copy of .env, history and an expired lock of token `tok`.
 * A link `value/value` → `.` makes `value/.openclaw-deploy` the same folder from inside it too.
 */
function serverAt(value: string): string {
  const root = tempDir('openclaw-operands-')
  const project = join(root, value)
  const state = join(project, '.openclaw-deploy')
  mkdirSync(join(state, 'lock'), { recursive: true })
  mkdirSync(join(root, 'tmp'))
  symlinkSync('.', join(project, value))
  const files: Record<string, string> = {
    'docker-compose.yml': 'services:\n  openclaw-gateway:\n    image: ${OPENCLAW_IMAGE}\n',
    '.env': 'OPENCLAW_IMAGE=reg.test/openclaw:v1\nA=old\n',
    '.openclaw-deploy/rollback': 'image=reg.test/openclaw:v0\nimage_id=sha256:aaaa\ntag=openclaw-rollback:t\n',
    '.openclaw-deploy/rollback.before': 'image=reg.test/openclaw:v00\nimage_id=sha256:dddd\ntag=openclaw-rollback:t\n',
    '.openclaw-deploy/rollback.before.owner': 'run-1\n',
    '.openclaw-deploy/images': 'sha256:aaaa\nsha256:cccc\n',
    '.openclaw-deploy/env.before': 'OPENCLAW_IMAGE=reg.test/openclaw:v0\nA=older\n',
    '.openclaw-deploy/env.before.owner': 'run-1\n',
    '.openclaw-deploy/history.log': 'earlier\n',
    '.openclaw-deploy/lock/holder': 'a run token=tok\nexpires=1\n'
  }
  for (const [file, text] of Object.entries(files)) writeFileSync(join(project, file), text)
  return root
}

/** Runs `command` as sshd would (renderCommand) in a fresh server folder; returns every recorded program call. */
function runRecorded(command: commands.RemoteCommand, value: string): { code: number | null; stderr: string; calls: string[][] } {
  const root = serverAt(value)
  const calls = join(root, 'calls')
  mkdirSync(calls)
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, OPENCLAW_CALLS: calls, TMPDIR: join(root, 'tmp') }
  const out = spawnSync('bash', ['-c', commands.renderCommand(command, 60)], { cwd: root, env, input: command.stdin ?? '', encoding: 'utf8', timeout: 30_000 })
  const recorded = readdirSync(calls).map(f => readFileSync(join(calls, f), 'utf8').split('\0').slice(0, -1))
  return { code: out.status, stderr: out.stderr, calls: recorded }
}

/** Each script with every positional value set to `v` (images, IDs, tags, paths, services, URLs, registry, username). */
const scripts = (v: string): Array<[string, commands.RemoteCommand]> => [
  ['takeLock', commands.takeLock(v, `holder ${v}`, 0)],
  ['renewLease', commands.renewLease(v, 'tok', 60)],
  ['releaseLock', commands.releaseLock(v, 'tok')],
  ['preflight', commands.preflight(v, 'OPENCLAW_IMAGE')],
  ['pullImage', commands.pullImage(v)],
  ['pullImageWithLogin', commands.pullImageWithLogin(v, { registry: v, username: v, password: 'pw' })],
  ['inspectImage', commands.inspectImage(v)],
  ['recordRollback', commands.recordRollback(v, v, { image: v, imageId: v }, v, 'run-1')],
  ['restoreRollbackRecord', commands.restoreRollbackRecord(v, 'run-1')],
  ['readRollbackRecord', commands.readRollbackRecord(v)],
  ['retagImage', commands.retagImage(v, v)],
  ['retagImage (digest)', commands.retagImage(v, `${v}@sha256:cccc`)],
  ['setEnvVariables', commands.setEnvVariables(v, { A: 'new' }, 'run-1')],
  ['restoreEnvFile', commands.restoreEnvFile(v, 'run-1')],
  ['forgetEnvCopy', commands.forgetEnvCopy(v, 'run-1')],
  ['composeUp', commands.composeUp(v, [v], 'OPENCLAW_IMAGE')],
  ['composeUp (leased, under the switch lock)', commands.withLease(v, 'tok', commands.exclusive(v, commands.composeUp(v, [v], 'OPENCLAW_IMAGE'), 30))],
  ['healthCheck', commands.healthCheck(v, v, 1, [v], false)],
  ['pruneImages', commands.pruneImages(v, v, [v])],
  ['appendHistory', commands.appendHistory(v, v)],
  ['statusProbe', commands.statusProbe(v, 'OPENCLAW_IMAGE', v, [v])]
]

/** The arguments of a call that start with `value` (the value, or a path made from it) and come before any `--`. */
function readAsOptions(call: string[], value: string): string[] {
  const end = call.indexOf('--')
  return call.slice(1, end === -1 ? undefined : end).filter(arg => arg.startsWith(value))
}

/** A value a program could take for an option: `-` or `--`, maybe an option's own letters, then more. */
// (the Z keeps it from being an option the script itself writes, such as `-q` or `-maxdepth`)
const optionLike = fc.tuple(fc.constantFrom('-', '--', '-r', '-f', '-n', '-e', '-p', '-rf', '--help', '--version'), fc.stringMatching(/^[a-z0-9]{0,6}$/)).map(([a, b]) => `${a}Z${b}`)

describe('every remote script passes `--` before a value that starts with `-`', () => {
  it('with a fixed value, each script hands it to programs only after `--` (and does hand it: the property below is not empty)', () => {
    const v = '-rfZ'
    const seen = scripts(v).map(([name, command]) => {
      const { code, calls } = runRecorded(command, v)
      return {
        name,
        code,
        options: calls.flatMap(call => readAsOptions(call, v).map(arg => `${call[0]} ${arg}`)),
        given: calls.some(call => call.slice(1).some(arg => arg.startsWith(v)))
      }
    })
    expect(seen.filter(s => s.options.length)).toEqual([])
    // every script got far enough to hand the value to a program (preflight's path goes only to the
    // shell's own cd)
    expect(seen.filter(s => !s.given).map(s => s.name)).toEqual(['preflight'])
    // and ended as it would on a real server: the rollback record of the digest is not that image
    expect(seen.filter(s => s.code !== 0).map(s => [s.name, s.code])).toEqual([['retagImage (digest)', 3]])
  })

  it('for any option-like value (property)', () => {
    fc.assert(
      fc.property(optionLike, v => {
        for (const [name, command] of scripts(v)) {
          const { calls } = runRecorded(command, v)
          expect({ name, v, options: calls.flatMap(call => readAsOptions(call, v).map(arg => `${call[0]} ${arg}`)) }).toEqual({ name, v, options: [] })
        }
      }),
      { numRuns: 6 }
    )
  }, 120_000)
})
