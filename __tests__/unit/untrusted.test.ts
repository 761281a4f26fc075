import { describe, expect, it } from '@jest/globals'
import { bounded, htmlText, logQuoted, markdownCode, markdownText, multiLine, preText, singleLine, stopCommandsToken } from '../../src/untrusted.js'

const WJ = '\u2060'

describe('singleLine', () => {
  it('replaces CR, LF, ESC, DEL, C1 and bidi controls with visible placeholders, and tabs with spaces', () => {
    expect(singleLine('a\rb\nc\r\nd')).toBe('a␍b␊c␍␊d')
    expect(singleLine('\u001b[31mred\u001b[0m')).toBe('␛[31mred␛[0m')
    expect(singleLine('x\u0000y\u007fz\u009bw\tv')).toBe('x␀y␡z\ufffdw v')
    expect(singleLine('\u202eevil\u2066 \u2028')).toBe('\ufffdevil\ufffd \ufffd')
    expect(singleLine('plain ghcr.io/acme/openclaw:1.2.3 -> :v2, %0A stays')).toBe('plain ghcr.io/acme/openclaw:1.2.3 -> :v2, %0A stays')
  })

  it('is bounded, says how much it cut, and never splits a surrogate pair', () => {
    expect(singleLine('x'.repeat(5000))).toBe(`${'x'.repeat(2000)}… [3000 more characters cut]`)
    expect(bounded('ab😀cd', 3)).toBe('ab… [4 more characters cut]')
    expect(bounded('short', 10)).toBe('short')
  })
})

describe('multiLine', () => {
  it('keeps line breaks (a bare CR becomes one), replaces other controls, and keeps the end when too long', () => {
    expect(multiLine('a\r\nb\rc\nd\u001b[2K')).toBe('a\nb\nc\nd␛[2K')
    const long = multiLine(`${'x'.repeat(100)}\nEND`, 50)
    expect(long.endsWith('END')).toBe(true)
    expect(long).toMatch(/^\[\d+ earlier characters cut\] …x+\nEND$/)
  })
})

describe('stop-commands', () => {
  it('prints the lines between ::stop-commands::<token> and ::<token>:: with a fresh random token each time', () => {
    const printed: string[] = []
    logQuoted(['one', '::error::forged\r::stop-commands::x', '##[error]old form'], line => printed.push(line))
    logQuoted(['two'], line => printed.push(line))
    const [start, body, end, start2] = printed
    const token = /^::stop-commands::([0-9a-f]{32})$/.exec(start!)![1]!
    expect(end).toBe(`::${token}::`)
    expect(body).toBe(`one\n::error::forged\n::stop-commands::x\n#${WJ}#[error]old form`)
    expect(start2).not.toBe(start)
  })

  it('never picks a token that occurs in the text', () => {
    const token = stopCommandsToken()
    expect(token).toMatch(/^[0-9a-f]{32}$/)
    expect(stopCommandsToken(`::${token}::`)).not.toBe(token)
  })

  it('prints nothing for no lines', () => {
    const printed: string[] = []
    logQuoted([], line => printed.push(line))
    expect(printed).toEqual([])
  })
})

describe('Markdown and HTML escaping', () => {
  it('escapes Markdown so that links, images, emphasis, code, cells, math and HTML stay text', () => {
    expect(markdownText('[x](https://evil.example) ![i](y) *b* _i_ `c` ~s~ | $m$ #1')).toBe('\\[x\\](https\\://evil.example) \\!\\[i\\](y) \\*b\\* \\_i\\_ \\`c\\` \\~s\\~ \\| \\$m\\$ \\#1')
    expect(markdownText('<img src=x> & <details>')).toBe('&lt;img src=x&gt; &amp; &lt;details&gt;')
    expect(markdownText('a\\b')).toBe('a\\\\b')
  })

  it('stops bare-URL autolinks, emoji shortcodes, mentions and e-mail links, and leaves image references alone', () => {
    expect(markdownText('www.evil.example WWW.x.y')).toBe('www\\.evil.example WWW\\.x.y')
    expect(markdownText(':rocket: :+1: gateway:running:0')).toBe(`:${WJ}rocket: :${WJ}+1: gateway:${WJ}running:0`)
    expect(markdownText('@octocat me@evil.example')).toBe(`@${WJ}octocat me@${WJ}evil.example`)
    for (const image of ['10.200.0.1:5000/openclaw:v1', 'ghcr.io/acme/openclaw@sha256:0123abcd', 'tenant-s2']) expect(markdownText(image)).toBe(image)
  })

  it('makes code spans that hold any backticks and pipes', () => {
    expect(markdownCode('abc123')).toBe('`abc123`')
    expect(markdownCode('a`b``c')).toBe('```a`b``c```')
    expect(markdownCode('`x')).toBe('`` `x ``')
    expect(markdownCode('a|b')).toBe('`a\\|b`')
    expect(markdownCode('a|b', { table: false })).toBe('`a|b`')
    expect(markdownCode('')).toBe('')
  })

  it('escapes HTML for <summary> and <pre>, keeping lines only in <pre>', () => {
    expect(htmlText('</summary><img src=x> "q" :smile:\nx')).toBe(`&lt;/summary&gt;&lt;img src=x&gt; &quot;q&quot; :${WJ}smile:␊x`)
    expect(preText('</pre>\n<b>x</b>\r\n:smile:')).toBe('&lt;/pre&gt;\n&lt;b&gt;x&lt;/b&gt;\n:smile:')
  })
})
