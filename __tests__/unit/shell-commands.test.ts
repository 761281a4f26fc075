import { spawnSync } from 'node:child_process'
import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import * as commands from '../../src/remote/commands.js'
import { quote, shellJoin } from '../../src/remote/shell.js'

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
    fc.constantFrom("'", '"', '`id`', '$(id)', '${HOME}', '; rm -rf /', '\n', '-rf', '*', '~', '!', '\\', "a'b\"c", '')
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
    ['preflight', v => commands.preflight(v)],
    ['pullImage', v => commands.pullImage(v)],
    ['inspectImage', v => commands.inspectImage(v)],
    ['recordRollback', (v, w) => commands.recordRollback(v, w, { image: w, imageId: v })],
    ['readRollbackRecord', v => commands.readRollbackRecord(v)],
    ['restoreRollbackRecord', v => commands.restoreRollbackRecord(v)],
    ['retagImage', (v, w) => commands.retagImage(v, w)],
    ['writeEnvFile', v => commands.writeEnvFile(v, Buffer.from('A=1\n'))],
    ['composeUp', (v, w) => commands.composeUp(v, [w, v])],
    ['healthCheck', (v, w) => commands.healthCheck(v, w, 60, [w])],
    ['pruneImages', (v, w) => commands.pruneImages(v, [w])],
    ['appendHistory', (v, w) => commands.appendHistory(v, w)],
    ['readState', v => commands.readState(v)],
    ['statusProbe', (v, w) => commands.statusProbe(v, w, 10, [w, v])]
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
        const inner = commands.composeUp(v, [w])
        const words = bashWords(commands.renderCommand(commands.withLease(w, v, inner), 42))
        const constant = bashWords(commands.renderCommand(commands.withLease('x', 'y', commands.composeUp('x', ['y'])), 42))[6]
        expect(words).toEqual(['timeout', '-k', '5', '42', 'bash', '-c', constant, 'openclaw-up', commands.stateDir(w), v, String(42 + 5 + 30), ...inner.args])
      }),
      { numRuns: 60 }
    )
  })

  it('a step that switches the server also waits for the switch lock: the values still arrive untouched', () => {
    fc.assert(
      fc.property(hostile, hostile, (v, w) => {
        const inner = commands.writeEnvFile(v, Buffer.from(w))
        const render = (c: commands.RemoteCommand) => bashWords(commands.renderCommand(commands.withLease(w, v, commands.exclusive(w, c, 7)), 20))
        const words = render(inner)
        expect(words).toEqual(['timeout', '-k', '5', '20', 'bash', '-c', render(commands.writeEnvFile('x', Buffer.from('')))[6], 'openclaw-write-env', commands.stateDir(w), v, '55', commands.stateDir(w), '13', '7', ...inner.args])
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
