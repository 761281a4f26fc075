// The authorized_keys editor of mode rotate-key (src/remote/authorized-keys.ts), run through a real
// bash on scratch files the way sshd runs it for the login user: options copied exactly, every other
// byte kept, the file replaced atomically or not at all.
import { spawnSync } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, chmodSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import * as keys from '../../src/remote/authorized-keys.js'
import { renderCommand, parseFacts, type RemoteCommand } from '../../src/remote/commands.js'
import { publicKeyOf, type PublicKey } from '../../src/remote/deploy-keys.js'
import { tempDirs } from './fixtures/temp.js'

const temp = tempDirs()
const COMMENT = 'openclaw-deploy rotated 2026-03-01T04:20:00Z'

let OLD: PublicKey
let NEW: PublicKey
let OTHER: PublicKey
/** `type blob` of a key, as an authorized_keys line has it. */
const words = (key: PublicKey) => `${key.type} ${key.blob}`

function keyPair(type: string): PublicKey {
  const dir = temp('openclaw-keygen-')
  const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'test', '-f', join(dir, 'id')], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`)
  return publicKeyOf(readFileSync(join(dir, 'id'), 'utf8'))
}

beforeAll(() => {
  OLD = keyPair('ed25519')
  NEW = keyPair('ecdsa')
  OTHER = keyPair('ed25519')
})

/** A login user's home whose ~/.ssh/authorized_keys holds `content` (none when undefined). */
function homeWith(content?: string | Buffer, mode = 0o600): { home: string; file: string } {
  const home = temp('openclaw-home-')
  mkdirSync(join(home, '.ssh'), { mode: 0o700 })
  const file = join(home, '.ssh', 'authorized_keys')
  if (content !== undefined) {
    writeFileSync(file, content)
    chmodSync(file, mode)
  }
  return { home, file }
}

/** Runs a step as sshd would: `bash -c` under `timeout`, with the user's HOME. */
function run(command: RemoteCommand, home: string) {
  const out = spawnSync('bash', ['-c', renderCommand(command, 30)], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home } })
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, facts: parseFacts(out.stdout) }
}

const add = (home: string) => run(keys.addKey(OLD, NEW, COMMENT), home)
const fact = (r: { facts: Map<string, string[]> }, key: string) => r.facts.get(key)?.at(-1)

describe('adding the new key next to the current one', () => {
  it('copies the options exactly, quoted spaces, commas and escaped quotes included, and keeps every other line', () => {
    const options = String.raw`restrict,from="10.0.0.1,10.0.0.2",command="echo \"a b\", c; exit",environment="X=1 2"`
    const before = ['# deploy keys', '', `${words(OTHER)} someone else`, `${options} ${words(OLD)} openclaw-deploy`, '  # indented comment', ''].join('\n')
    const { home, file } = homeWith(before)
    const r = add(home)
    expect([r.code, r.stderr]).toEqual([0, ''])
    expect(r.facts).toEqual(
      new Map([
        ['old_lines', ['1']],
        ['new_lines', ['0']],
        ['added', ['1']]
      ])
    )
    const after = readFileSync(file, 'utf8')
    expect(after).toBe(before.replace(`${words(OLD)} openclaw-deploy\n`, `${words(OLD)} openclaw-deploy\n${options} ${words(NEW)} ${COMMENT}\n`))
  })

  it('a line without options gets a line without options', () => {
    const { home, file } = homeWith(`${words(OLD)}\n`)
    expect(add(home).code).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(`${words(OLD)}\n${words(NEW)} ${COMMENT}\n`)
  })

  it('keeps CRLF line endings, and a file without a final newline without one', () => {
    const crlf = homeWith(`# keys\r\nrestrict ${words(OLD)} old\r\n${words(OTHER)} x\r\n`)
    expect(add(crlf.home).code).toBe(0)
    expect(readFileSync(crlf.file, 'utf8')).toBe(`# keys\r\nrestrict ${words(OLD)} old\r\nrestrict ${words(NEW)} ${COMMENT}\r\n${words(OTHER)} x\r\n`)

    const open = homeWith(`${words(OTHER)} x\nrestrict ${words(OLD)}`)
    expect(add(open.home).code).toBe(0)
    expect(readFileSync(open.file, 'utf8')).toBe(`${words(OTHER)} x\nrestrict ${words(OLD)}\nrestrict ${words(NEW)} ${COMMENT}`)
  })

  it('the current key on two lines: one new line after each, once per distinct options', () => {
    const before = `from="10.0.0.1" ${words(OLD)} a\n${words(OTHER)} b\nfrom="10.9.9.9" ${words(OLD)} c\nfrom="10.0.0.1" ${words(OLD)} d\n`
    const { home, file } = homeWith(before)
    const r = add(home)
    expect([r.code, fact(r, 'old_lines'), fact(r, 'added')]).toEqual([0, '3', '2'])
    expect(readFileSync(file, 'utf8')).toBe(
      `from="10.0.0.1" ${words(OLD)} a\nfrom="10.0.0.1" ${words(NEW)} ${COMMENT}\n${words(OTHER)} b\nfrom="10.9.9.9" ${words(OLD)} c\nfrom="10.9.9.9" ${words(NEW)} ${COMMENT}\nfrom="10.0.0.1" ${words(OLD)} d\n`
    )
    // and removing the current key leaves the new key where it allowed the old one in
    expect(run(keys.removeKey(OLD, NEW), home).code).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(`from="10.0.0.1" ${words(NEW)} ${COMMENT}\n${words(OTHER)} b\nfrom="10.9.9.9" ${words(NEW)} ${COMMENT}\n`)
  })

  it('adds nothing when the new key has a line already, and does not rewrite the file (a re-run after a partial rotation)', () => {
    const before = `restrict ${words(OLD)} old\nrestrict ${words(NEW)} openclaw-deploy rotated 2026-01-01T00:00:00Z\n`
    const { home, file } = homeWith(before)
    const inode = statSync(file).ino
    const r = add(home)
    expect([r.code, fact(r, 'new_lines'), fact(r, 'added')]).toEqual([0, '1', '0'])
    expect(readFileSync(file, 'utf8')).toBe(before)
    expect(statSync(file).ino).toBe(inode)
  })

  it('does not take a commented-out line, or the key inside another line’s options, for the current key', () => {
    const before = `# ${words(OLD)} retired\ncommand="${words(OLD)}" ${words(OTHER)} x\n`
    const { home, file } = homeWith(before)
    const r = add(home)
    expect(r.code).toBe(3)
    expect(fact(r, 'old_lines')).toBe('0')
    expect(fact(r, 'error')).toMatch(
      /authorized_keys holds no line for the current key, yet it logged in as .*reads keys from elsewhere \(AuthorizedKeysFile or AuthorizedKeysCommand in sshd_config\).*Nothing was changed$/
    )
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it('a missing file: fails, creates nothing', () => {
    const { home, file } = homeWith()
    const r = add(home)
    expect(r.code).toBe(3)
    expect(fact(r, 'error')).toMatch(/authorized_keys does not exist, yet the current key logged in .*Nothing was changed$/)
    expect(existsSync(file)).toBe(false)
    expect(readdirSync(join(home, '.ssh'))).toEqual([])
  })

  it('refuses a symbolic link in place of the file, and changes nothing', () => {
    const { home, file } = homeWith()
    const real = join(home, 'real_keys')
    writeFileSync(real, `${words(OLD)}\n`)
    symlinkSync(real, file)
    const r = add(home)
    expect(r.code).toBe(3)
    expect(fact(r, 'error')).toMatch(/authorized_keys of .* is a symbolic link; the action does not follow it/)
    expect(readFileSync(real, 'utf8')).toBe(`${words(OLD)}\n`)
    expect(lstatSync(file).isSymbolicLink()).toBe(true)
  })
})

describe('the file is replaced atomically, keeping its mode', () => {
  it('renames a new file over it (a new inode), with the same mode, and leaves no temporary file', () => {
    const { home, file } = homeWith(`${words(OLD)}\n`, 0o640)
    const inode = statSync(file).ino
    expect(add(home).code).toBe(0)
    expect(statSync(file).ino).not.toBe(inode)
    expect(statSync(file).mode & 0o777).toBe(0o640)
    expect(readdirSync(join(home, '.ssh')).sort()).toEqual(['.openclaw-deploy-keys.lock', 'authorized_keys'])
  })

  it('when the new file cannot be written, the old one stays as it was', () => {
    const before = `${words(OLD)}\n${words(OTHER)}\n`
    const { home, file } = homeWith(before)
    // the temporary file's name taken by a folder: the new version cannot be written there
    mkdirSync(join(home, '.ssh', '.authorized_keys.openclaw-deploy.tmp'))
    const r = add(home)
    expect(r.code).toBe(3)
    expect(fact(r, 'error')).toMatch(/nothing was changed$/)
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it('waits for another editor holding the lock', () => {
    const { home, file } = homeWith(`${words(OLD)}\n`)
    const lock = join(home, '.ssh', '.openclaw-deploy-keys.lock')
    // holds the lock for 2 s while the step runs
    const out = spawnSync(
      'bash',
      ['-c', `exec 9>>"$LOCK"; flock 9; (sleep 2; exec 9>&-) & exec 9>&-; start=$SECONDS; ${renderCommand(keys.addKey(OLD, NEW, COMMENT), 30)} >/dev/null; echo $((SECONDS - start))`],
      { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home, LOCK: lock } }
    )
    expect(Number(out.stdout.trim())).toBeGreaterThanOrEqual(1)
    expect(readFileSync(file, 'utf8')).toContain(words(NEW))
  })
})

describe('removing a key', () => {
  it('removes the current key’s lines only while the new key has one, byte for byte otherwise', () => {
    const before = `# a\r\n${words(OTHER)} x\r\nrestrict ${words(OLD)} old\r\nrestrict ${words(NEW)} ${COMMENT}\r\n\r\n# b`
    const { home, file } = homeWith(before)
    const r = run(keys.removeKey(OLD, NEW), home)
    expect([r.code, fact(r, 'removed')]).toEqual([0, '1'])
    expect(readFileSync(file, 'utf8')).toBe(before.replace(`restrict ${words(OLD)} old\r\n`, ''))
    // again: nothing left to remove
    expect(fact(run(keys.removeKey(OLD, NEW), home), 'removed')).toBe('0')
  })

  it('refuses when the key that must stay has no line, and changes nothing', () => {
    const before = `${words(OLD)}\n`
    const { home, file } = homeWith(before)
    const r = run(keys.removeKey(OLD, NEW), home)
    expect(r.code).toBe(3)
    expect(fact(r, 'error')).toMatch(/holds no line for the key that must stay, so no line was removed/)
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it('the undo takes back only the lines this action added (its comment), not one the operator put there', () => {
    const before = `restrict ${words(OLD)} old\nrestrict ${words(NEW)} ${COMMENT}\n${words(NEW)} added by hand\n`
    const { home, file } = homeWith(before)
    const r = run(keys.removeKey(NEW, OLD, keys.ROTATED_MARK), home)
    expect([r.code, fact(r, 'removed')]).toEqual([0, '1'])
    expect(readFileSync(file, 'utf8')).toBe(`restrict ${words(OLD)} old\n${words(NEW)} added by hand\n`)
  })

  it('a last line removed from a file without a final newline', () => {
    const { home, file } = homeWith(`${words(NEW)} n\n${words(OLD)} o`)
    expect(run(keys.removeKey(OLD, NEW), home).code).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(`${words(NEW)} n`)
  })
})

describe('reading', () => {
  it('counts the lines of each key; a missing file has none', () => {
    const { home } = homeWith(`${words(OLD)}\nfrom="a b" ${words(OLD)}\n${words(NEW)}\n`)
    const r = run(keys.countKeys(OLD, NEW), home)
    expect([r.code, fact(r, 'old_lines'), fact(r, 'new_lines'), fact(r, 'file')]).toEqual([0, '2', '1', join(home, '.ssh', 'authorized_keys')])
    const none = run(keys.countKeys(OLD, NEW), homeWith().home)
    expect([none.code, fact(none, 'old_lines'), fact(none, 'new_lines')]).toEqual([0, '0', '0'])
  })

  it('the login proof says who logged in', () => {
    const r = run(keys.whoAmI(), homeWith().home)
    expect(fact(r, 'user')).toBe(spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim())
  })
})

describe('nothing in the file or the comment reaches the script', () => {
  // Shell and awk metacharacters, quotes of both kinds, backslashes, tabs, CR, and bytes above 0x7f.
  const nasty = fc
    .array(fc.constantFrom('$(touch PWNED)', '`id`', '"', "'", '\\', '\\"', ';', '|', '&', '#', ' ', '\t', '\r', '%s', '*', '~', 'é', '\x7f', 'a', 'Z', ',', '='), { maxLength: 12 })
    .map(parts => parts.join(''))
  const otherLine = nasty.map(text => text.replace(/\r(?!$)/g, ''))

  it('the same script text whatever the keys and the comment', () => {
    fc.assert(
      fc.property(nasty, comment => {
        const one = keys.addKey(OLD, NEW, comment.replace(/[\r\n]/g, ''))
        expect(one.script).toBe(keys.addKey(NEW, OTHER, COMMENT).script)
        expect(one.script).not.toContain(OLD.blob)
      })
    )
    expect(() => keys.addKey(OLD, NEW, 'a\nb')).toThrow()
    expect(() => keys.addKey({ ...OLD, blob: 'AAAA $(id)' }, NEW, COMMENT)).toThrow()
  })

  it('rotating keeps every other line byte for byte, and the old line’s options exactly', () => {
    fc.assert(
      fc.property(fc.array(otherLine, { maxLength: 4 }), fc.array(otherLine, { maxLength: 4 }), nasty, fc.boolean(), fc.boolean(), (head, tail, comment, crlf, newline) => {
        const options = `command="${comment.replace(/["\\\r]/g, '')}",restrict`
        const top = head.map(l => l + '\n').join('')
        const bottom = tail.map(l => '\n' + l).join('') + (newline ? '\n' : '')
        const oldLine = `${options} ${words(OLD)} ${comment.replace(/\r/g, '')}`
        const before = `${top}${oldLine}${crlf ? '\r' : ''}${bottom}`
        const { home, file } = homeWith(Buffer.from(before))
        const added = add(home)
        expect([added.code, fact(added, 'added')]).toEqual([0, '1'])
        const newLine = `${options} ${words(NEW)} ${COMMENT}${crlf ? '\r' : ''}`
        expect(readFileSync(file).equals(Buffer.from(`${top}${oldLine}${crlf ? '\r' : ''}\n${newLine}${bottom}`))).toBe(true)
        expect(run(keys.removeKey(OLD, NEW), home).code).toBe(0)
        expect(readFileSync(file).equals(Buffer.from(`${top}${newLine}${bottom}`))).toBe(true)
        expect(existsSync(join(home, 'PWNED'))).toBe(false)
      }),
      { numRuns: 40 }
    )
  })
})
