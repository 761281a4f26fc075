import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { OutputTail } from '../../src/remote/output-tail.js'

/** What OutputTail promises, computed the obvious way over the whole stream. */
function expected(chunks: Uint8Array[], limit: number): { text: string; dropped: number } {
  const all = Buffer.concat(chunks)
  let kept = all.subarray(Math.max(0, all.length - limit))
  if (kept.length < all.length) {
    const newline = kept.indexOf(0x0a)
    if (newline >= 0) kept = kept.subarray(newline + 1)
  }
  return { text: kept.toString('utf8'), dropped: all.length - kept.length }
}

describe('OutputTail', () => {
  it('keeps a short stream whole, decoding a character split across chunks', () => {
    const tail = new OutputTail(64, 8)
    const euro = Buffer.from('a=€\n')
    tail.push(euro.subarray(0, 3))
    tail.push(euro.subarray(3))
    expect(tail.read()).toEqual({ text: 'a=€\n', dropped: 0 })
  })

  it('keeps the last lines and drops the line cut at the start, so its rest cannot read as a fact', () => {
    const tail = new OutputTail(16, 4)
    tail.push(Buffer.from('first=1\nsecond=2\nthird=3\n'))
    // The last 16 bytes are `nd=2\nthird=3\n`... minus the cut `nd=2` line.
    expect(tail.read()).toEqual({ text: 'third=3\n', dropped: 17 })
  })

  it('decodes a character cut at the boundary as U+FFFD instead of throwing', () => {
    const tail = new OutputTail(4, 2)
    tail.push(Buffer.from('x€abc'))
    // `x€abc` is 7 bytes; the last 4 start with the last byte of `€`.
    expect(tail.read()).toEqual({ text: '\uFFFDabc', dropped: 3 })
  })

  it('holds at most limit + two blocks, whatever the chunk sizes', () => {
    const tail = new OutputTail(1000, 100)
    for (let i = 0; i < 5000; i++) tail.push(Buffer.from('y'))
    tail.push(Buffer.alloc(250_000, 'z'))
    for (let i = 0; i < 3000; i++) tail.push(Buffer.from('w'))
    const held = (tail as unknown as { blocks: Buffer[] }).blocks.reduce((n, b) => n + b.length, 0)
    expect(held).toBeLessThanOrEqual(1000 + 2 * 100)
    expect(tail.read()).toEqual({ text: 'w'.repeat(1000), dropped: 5000 + 250_000 + 2000 })
  })

  it('equals the last limit bytes of the stream, less a cut first line', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 30 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 16 }), (chunks, limit, block) => {
        const tail = new OutputTail(limit, block)
        for (const chunk of chunks) tail.push(chunk)
        expect(tail.read()).toEqual(expected(chunks, limit))
        expect(tail.dropped).toBe(Math.max(0, chunks.reduce((n, c) => n + c.length, 0) - limit))
      })
    )
  })
})
