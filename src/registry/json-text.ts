/**
 * A strict JSON reader that remembers where every value sits in the text.
 *
 * JSON.parse is not enough for a file people edit by hand: its error messages and positions differ
 * between Node versions, it silently keeps the last of two equal keys (a second `"enabled"` would
 * win without a word), and it cannot tell us the line of `servers[3].port` when that value is wrong.
 */

/** Where something is in the text; both 1-based, columns counted in characters. */
export interface TextPosition {
  line: number
  column: number
}

/** A way into a JSON value: object keys and array indexes, from the top. */
export type JsonPath = ReadonlyArray<string | number>

export interface DuplicateKey {
  /** The path of the repeated key, e.g. ['servers', 0, 'port']. */
  path: JsonPath
  first: TextPosition
  second: TextPosition
}

export interface JsonText {
  value: unknown
  /** Position of the value at `path`, or of the nearest enclosing value that exists. */
  positionOf(path: JsonPath): TextPosition
  /** Keys that appear twice in the same object; JSON.parse would silently keep only the last. */
  duplicateKeys: DuplicateKey[]
}

export class JsonSyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly position: TextPosition,
    /** The line of text the problem is on, for showing it to people. */
    readonly lineText: string
  ) {
    super(`line ${position.line}, column ${position.column}: ${reason}`)
    this.name = 'JsonSyntaxError'
  }
}

// A hostile file could nest arrays until the parser overflows the stack; a registry needs 4 levels.
const MAX_DEPTH = 64
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y

export function parseJsonText(text: string): JsonText {
  return new Reader(text).readDocument()
}

/** Key of the position table: the path segments joined by a character JSON keys cannot contain raw. */
function pathKey(path: JsonPath): string {
  return path.map(segment => String(segment)).join('\u0000')
}

class Reader {
  private at = 0
  private readonly positions = new Map<string, number>()
  private readonly duplicates: Array<{ path: JsonPath; first: number; second: number }> = []

  constructor(private readonly text: string) {}

  readDocument(): JsonText {
    this.skipSpace()
    if (this.at >= this.text.length) this.fail(this.at, 'the file has no JSON value')
    const value = this.readValue([], 0)
    this.skipSpace()
    if (this.at < this.text.length) {
      this.fail(this.at, `unexpected ${this.describe(this.at)} after the end of the top-level value (is a ',' or '{' missing, or is there text after the last '}'?)`)
    }
    return {
      value,
      positionOf: path => {
        for (let n = path.length; n >= 0; n--) {
          const offset = this.positions.get(pathKey(path.slice(0, n)))
          if (offset !== undefined) return this.positionAt(offset)
        }
        return { line: 1, column: 1 }
      },
      duplicateKeys: this.duplicates.map(d => ({ path: d.path, first: this.positionAt(d.first), second: this.positionAt(d.second) }))
    }
  }

  private readValue(path: JsonPath, depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(this.at, `values are nested more than ${MAX_DEPTH} levels deep`)
    this.positions.set(pathKey(path), this.at)
    const c = this.text[this.at]
    if (c === '{') return this.readObject(path, depth)
    if (c === '[') return this.readArray(path, depth)
    if (c === '"') return this.readString()
    if (c === '-' || (c >= '0' && c <= '9')) return this.readNumber()
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null]
    ] as const) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length
        return value
      }
    }
    if (c === "'") this.fail(this.at, "strings need double quotes (\"), not single quotes (')")
    if (c === '/' && (this.text[this.at + 1] === '/' || this.text[this.at + 1] === '*')) this.fail(this.at, 'JSON has no comments; remove it')
    if (c === undefined) this.fail(this.at, 'the file ends where a value was expected (is it cut off?)')
    this.fail(this.at, `expected a value (a "string", a number, true, false, null, {...} or [...]), found ${this.describe(this.at)}`)
  }

  private readObject(path: JsonPath, depth: number): Record<string, unknown> {
    const object: Record<string, unknown> = {}
    const seen = new Map<string, number>()
    let commaAt = -1
    this.at++ // {
    this.skipSpace()
    if (this.text[this.at] === '}') {
      this.at++
      return object
    }
    for (;;) {
      this.skipSpace()
      const keyAt = this.at
      if (this.text[keyAt] !== '"') {
        if (this.text[keyAt] === '}') this.fail(commaAt, "trailing comma before '}': remove this ',' after the last property")
        if (this.text[keyAt] === "'") this.fail(keyAt, "property names need double quotes (\"), not single quotes (')")
        if (this.text[keyAt] === '/' && (this.text[keyAt + 1] === '/' || this.text[keyAt + 1] === '*')) this.fail(keyAt, 'JSON has no comments; remove it')
        this.fail(keyAt, `expected a property name in double quotes, found ${this.describe(keyAt)}`)
      }
      const key = this.readString()
      this.skipSpace()
      if (this.text[this.at] !== ':') this.fail(this.at, `expected ':' after the property name ${JSON.stringify(key)}, found ${this.describe(this.at)}`)
      this.at++
      this.skipSpace()
      const valuePath = [...path, key]
      const earlier = seen.get(key)
      if (earlier !== undefined) this.duplicates.push({ path: valuePath, first: earlier, second: keyAt })
      else seen.set(key, keyAt)
      const value = this.readValue(valuePath, depth + 1)
      // defineProperty, not assignment: a "__proto__" key must stay a plain (and then unknown) field.
      Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
      this.skipSpace()
      const c = this.text[this.at]
      if (c === ',') {
        commaAt = this.at++
        continue
      }
      if (c === '}') {
        this.at++
        return object
      }
      if (c === '"') this.fail(this.at, `expected ',' between properties: add a ',' after the value of ${JSON.stringify(key)}`)
      if (c === undefined) this.fail(this.at, "the file ends inside an object: a '}' is missing")
      this.fail(this.at, `expected ',' or '}' after the value of ${JSON.stringify(key)}, found ${this.describe(this.at)}`)
    }
  }

  private readArray(path: JsonPath, depth: number): unknown[] {
    const array: unknown[] = []
    let commaAt = -1
    this.at++ // [
    this.skipSpace()
    if (this.text[this.at] === ']') {
      this.at++
      return array
    }
    for (;;) {
      this.skipSpace()
      if (this.text[this.at] === ']') this.fail(commaAt, "trailing comma before ']': remove this ',' after the last item")
      array.push(this.readValue([...path, array.length], depth + 1))
      this.skipSpace()
      const c = this.text[this.at]
      if (c === ',') {
        commaAt = this.at++
        continue
      }
      if (c === ']') {
        this.at++
        return array
      }
      if (c === '{' || c === '"' || c === '[') this.fail(this.at, `expected ',' between items: add a ',' after item ${array.length - 1}`)
      if (c === undefined) this.fail(this.at, "the file ends inside a list: a ']' is missing")
      this.fail(this.at, `expected ',' or ']' after item ${array.length - 1}, found ${this.describe(this.at)}`)
    }
  }

  private readString(): string {
    const start = this.at
    this.at++ // opening quote
    for (;;) {
      const c = this.text[this.at]
      if (c === undefined) this.fail(start, 'this string is never closed: a \'"\' is missing')
      if (c === '"') break
      if (c === '\\') {
        this.at += 2
        continue
      }
      if (c === '\n' || c === '\r') this.fail(start, 'this string is not closed before the end of its line: a \'"\' is missing (a line break inside a string is written \\n)')
      if (c < ' ') this.fail(this.at, `a string contains the control character U+${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}; write it as an escape such as \\t or \\u0000`)
      this.at++
    }
    this.at++ // closing quote
    try {
      // The span is a complete string token; JSON.parse decodes its escapes exactly as the spec says.
      return JSON.parse(this.text.slice(start, this.at)) as string
    } catch {
      const bad = this.text.slice(start, this.at).search(/\\(?!["\\/bfnrt]|u[0-9a-fA-F]{4})/)
      this.fail(bad >= 0 ? start + bad : start, 'invalid escape in a string: allowed are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX')
    }
  }

  private readNumber(): number {
    NUMBER.lastIndex = this.at
    const match = NUMBER.exec(this.text)
    if (!match || match[0] === '-') this.fail(this.at, `expected a number, found ${this.describe(this.at)}`)
    const next = this.text[this.at + match[0].length]
    if (next !== undefined && /[0-9A-Za-z.+-]/.test(next)) {
      this.fail(this.at, `${JSON.stringify(match[0] + next)}... is not a JSON number (no leading zeros, hex, or '+'; text needs double quotes)`)
    }
    this.at += match[0].length
    return Number(match[0])
  }

  private skipSpace(): void {
    while (this.at < this.text.length && ' \t\n\r'.includes(this.text[this.at])) this.at++
  }

  private describe(offset: number): string {
    const c = this.text[offset]
    if (c === undefined) return 'the end of the file'
    if (c === '\n' || c === '\r') return 'a line break'
    return JSON.stringify(c)
  }

  private positionAt(offset: number): TextPosition {
    let line = 1
    let lineStart = 0
    for (let i = 0; i < offset && i < this.text.length; i++) {
      if (this.text[i] === '\n') {
        line++
        lineStart = i + 1
      }
    }
    return { line, column: offset - lineStart + 1 }
  }

  private fail(offset: number, reason: string): never {
    const position = this.positionAt(offset)
    const lineStart = this.text.lastIndexOf('\n', offset - 1) + 1
    const lineEnd = this.text.indexOf('\n', offset)
    const lineText = this.text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd).replace(/\r$/, '')
    throw new JsonSyntaxError(reason, position, lineText)
  }
}
