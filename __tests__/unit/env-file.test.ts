import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { readImageVariable, replaceImageVariable } from '../../src/remote/env-file.js'

const IMAGE = 'registry.example/openclaw:v2'

describe('.env image variable', () => {
  it.each([
    ['plain', 'OPENCLAW_IMAGE=old:1\n', 'OPENCLAW_IMAGE=registry.example/openclaw:v2\n'],
    ['double quotes', 'OPENCLAW_IMAGE="old:1"\n', `OPENCLAW_IMAGE="${IMAGE}"\n`],
    ['single quotes', "OPENCLAW_IMAGE='old:1'\n", `OPENCLAW_IMAGE='${IMAGE}'\n`],
    ['export prefix and spaces', 'export OPENCLAW_IMAGE = old:1\n', `export OPENCLAW_IMAGE = ${IMAGE}\n`],
    ['inline comment', 'OPENCLAW_IMAGE=old:1  # pinned\n', `OPENCLAW_IMAGE=${IMAGE}  # pinned\n`],
    ['no trailing newline', 'A=1\nOPENCLAW_IMAGE=old:1', `A=1\nOPENCLAW_IMAGE=${IMAGE}`],
    ['CRLF', 'A=1\r\nOPENCLAW_IMAGE=old:1\r\nB=2\r\n', `A=1\r\nOPENCLAW_IMAGE=${IMAGE}\r\nB=2\r\n`],
    ['commented-out line is left alone', '# OPENCLAW_IMAGE=x\nOPENCLAW_IMAGE=old:1\n', `# OPENCLAW_IMAGE=x\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['similar names are left alone', 'OPENCLAW_IMAGE_OLD=a\nOPENCLAW_IMAGE=old:1\nMY_OPENCLAW_IMAGE=b\n', `OPENCLAW_IMAGE_OLD=a\nOPENCLAW_IMAGE=${IMAGE}\nMY_OPENCLAW_IMAGE=b\n`],
    ['last assignment wins, as in compose', 'OPENCLAW_IMAGE=a\nOPENCLAW_IMAGE=b\n', `OPENCLAW_IMAGE=a\nOPENCLAW_IMAGE=${IMAGE}\n`],
    ['empty value', 'OPENCLAW_IMAGE=\n', `OPENCLAW_IMAGE=${IMAGE}\n`]
  ])('%s', (_name, before, after) => {
    expect(replaceImageVariable(Buffer.from(before), 'OPENCLAW_IMAGE', IMAGE).toString()).toBe(after)
  })

  it('reads the value the way compose would', () => {
    expect(readImageVariable(Buffer.from('OPENCLAW_IMAGE="ghcr.io/a/b:1" # x\n'), 'OPENCLAW_IMAGE')).toBe('ghcr.io/a/b:1')
    expect(readImageVariable(Buffer.from('OTHER=1\n'), 'OPENCLAW_IMAGE')).toBeUndefined()
  })

  it('refuses to invent the variable', () => {
    expect(() => replaceImageVariable(Buffer.from('A=1\n'), 'OPENCLAW_IMAGE', IMAGE)).toThrow(/no OPENCLAW_IMAGE= line/)
  })

  it('keeps every byte outside the value, whatever the rest of the file holds', () => {
    const otherLine = fc.uint8Array({ maxLength: 60 }).map(bytes => Buffer.from(bytes).toString('latin1').replace(/\n/g, ' ').replace(/^\s*(export\s+)?OPENCLAW_IMAGE\s*=/, 'X='))
    fc.assert(
      fc.property(fc.array(otherLine, { maxLength: 5 }), fc.array(otherLine, { maxLength: 5 }), fc.boolean(), (before, after, newline) => {
        const head = before.map(l => l + '\n').join('')
        const rest = after.map(l => '\n' + l).join('') + (newline ? '\n' : '')
        const file = Buffer.from(`${head}OPENCLAW_IMAGE=old:1${rest}`, 'latin1')
        const changed = replaceImageVariable(file, 'OPENCLAW_IMAGE', IMAGE)
        expect(changed.equals(Buffer.from(`${head}OPENCLAW_IMAGE=${IMAGE}${rest}`, 'latin1'))).toBe(true)
        // And back: the original bytes come back exactly.
        expect(replaceImageVariable(changed, 'OPENCLAW_IMAGE', 'old:1').equals(file)).toBe(true)
      })
    )
  })
})
