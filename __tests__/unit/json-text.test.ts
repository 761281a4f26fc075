import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { JsonSyntaxError, parseJsonText } from '../../src/registry/json-text.js'

describe('parseJsonText', () => {
  it('reads every JSON document exactly as JSON.parse does', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 2, '\t'), (value, indent) => {
        const text = JSON.stringify(value, null, indent)
        expect(parseJsonText(text).value).toEqual(JSON.parse(text))
      }),
      { numRuns: 500 }
    )
  })

  it('rejects exactly the texts JSON.parse rejects', () => {
    const jsonish = fc.stringMatching(/^[\s{}[\]",:0-9a-z\\.eE+-]{0,30}$/)
    // Valid documents with one character inserted, removed or replaced: the typos people make.
    const edited = fc
      .tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat(), fc.constantFrom('', ',', ':', '"', '{', '}', '[', ']', '0', '-', '.', 'e', '\\', '\n', ' '), fc.boolean())
      .map(([value, at, char, replace]) => {
        const text = JSON.stringify(value, null, 1)
        const i = text.length ? at % text.length : 0
        return text.slice(0, i) + char + text.slice(replace ? i + 1 : i)
      })
    fc.assert(
      fc.property(fc.oneof(jsonish, edited), text => {
        let builtIn = true
        try {
          JSON.parse(text)
        } catch {
          builtIn = false
        }
        let ours = true
        try {
          parseJsonText(text)
        } catch (error) {
          expect(error).toBeInstanceOf(JsonSyntaxError)
          ours = false
        }
        expect(ours).toBe(builtIn)
      }),
      { numRuns: 5000 }
    )
  })

  it('locates values by path, falling back to the nearest existing parent', () => {
    const json = parseJsonText('{\n  "servers": [\n    { "name": "a",\n      "port": 22 }\n  ]\n}')
    expect(json.positionOf(['servers', 0, 'port'])).toEqual({ line: 4, column: 15 })
    expect(json.positionOf(['servers', 0, 'host'])).toEqual({ line: 3, column: 5 })
    expect(json.positionOf(['servers'])).toEqual({ line: 2, column: 14 })
    expect(json.positionOf([])).toEqual({ line: 1, column: 1 })
  })

  it('reports keys that appear twice', () => {
    const json = parseJsonText('{"a": 1,\n "b": {"c": 1, "c": 2},\n "a": 3}')
    expect(json.value).toEqual({ a: 3, b: { c: 2 } })
    expect(json.duplicateKeys).toEqual([
      { path: ['b', 'c'], first: { line: 2, column: 8 }, second: { line: 2, column: 16 } },
      { path: ['a'], first: { line: 1, column: 2 }, second: { line: 3, column: 2 } }
    ])
  })

  it('reads nesting of any depth, as JSON.parse does, and locates values deep inside it', () => {
    // 2,000 levels compared whole (jest's own deep equality recurses); the deeper one by position.
    const mixed = `${'{"a": ['.repeat(1000)}true${']}'.repeat(1000)}`
    expect(parseJsonText(mixed).value).toEqual(JSON.parse(mixed))
    const depth = 200_000
    const json = parseJsonText(`{"a":\n${'['.repeat(depth)}1${']'.repeat(depth)}}`)
    expect(json.positionOf(['a', ...Array<number>(depth).fill(0)])).toEqual({ line: 2, column: depth + 1 })
    expect(json.positionOf(['a', 0, 0, 5])).toEqual({ line: 2, column: 3 })
  })

  it('looks for repeated keys only as deep as asked', () => {
    const text = '{"a": 1, "a": 2, "b": {"c": 1, "c": 2, "d": {"e": 1, "e": 2}}}'
    expect(parseJsonText(text).duplicateKeys.map(d => d.path)).toEqual([['a'], ['b', 'c'], ['b', 'd', 'e']])
    expect(parseJsonText(text, { duplicateKeyDepth: 1 }).duplicateKeys.map(d => d.path)).toEqual([['a'], ['b', 'c']])
    expect(parseJsonText(text, { duplicateKeyDepth: 1 }).value).toEqual(JSON.parse(text))
  })

  it('keeps "__proto__" an ordinary key', () => {
    const value = parseJsonText('{"__proto__": {"polluted": true}}').value as Record<string, unknown>
    expect(Object.keys(value)).toEqual(['__proto__'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
  })

  it('names the position of a syntax error and the line it is on', () => {
    try {
      parseJsonText('{\n  "a": 1\n  "b": 2\n}')
      throw new Error('expected a syntax error')
    } catch (error) {
      expect(error).toBeInstanceOf(JsonSyntaxError)
      expect(error).toMatchObject({ position: { line: 3, column: 3 }, lineText: '  "b": 2' })
      expect((error as Error).message).toBe("line 3, column 3: expected ',' between properties: add a ',' after the value of \"a\"")
    }
  })
})
