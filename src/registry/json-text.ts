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

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y

export interface ReadOptions {
  /**
   * Repeated keys are looked for in objects at most this deep (the top level is 0). Each one found
   * carries its whole path, so a small file nested thousands deep with a repeated key at every level
   * costs time and memory quadratic in its depth; a caller that knows how deep its objects go can
   * say so and skip the rest.
   */
  duplicateKeyDepth?: number
}

export function parseJsonText(text: string, options: ReadOptions = {}): JsonText {
  return new Reader(text, options.duplicateKeyDepth ?? Infinity).readDocument()
}

// JSON.parse has no depth limit of its own, so neither may we: a file nested thousands deep is still
// JSON, and its owner needs the schema's word on the value that is wrong, not ours on the nesting.
// So the reader keeps its own stack of the objects and lists it is inside instead of recursing, and
// records positions per container (not per path string) so that deep values cost no more than
// shallow ones.
interface OpenObject {
  kind: 'object'
  value: Record<string, unknown>
  /** Where each key's latest occurrence starts; where its value starts follows from it. */
  keys: Map<string, number>
  /** Where a repeated key first appeared; only objects with a repeated key need one. */
  firstKeys?: Map<string, number>
  /** The key whose value is being read. */
  key: string
  commaAt: number
  /** The object's own path, worked out the first time a repeated key in it needs it. */
  path?: JsonPath
}

interface OpenList {
  kind: 'list'
  value: unknown[]
  /** Where each item starts. */
  items: number[]
  commaAt: number
}

type Open = OpenObject | OpenList

class Reader {
  private at = 0
  /** Per object or list in the value: where its members are in the text (see positionOf). */
  private readonly members = new Map<object, Map<string, number> | number[]>()
  private readonly open: Open[] = []
  private readonly duplicates: Array<{ path: JsonPath; first: number; second: number }> = []
  private lineStarts: number[] | undefined

  constructor(
    private readonly text: string,
    private readonly duplicateKeyDepth: number
  ) {}

  readDocument(): JsonText {
    this.skipSpace()
    if (this.at >= this.text.length) this.fail(this.at, 'the file has no JSON value')
    const start = this.at
    const value = this.readValue()
    this.skipSpace()
    if (this.at < this.text.length) {
      this.fail(this.at, `unexpected ${this.describe(this.at)} after the end of the top-level value (is a ',' or '{' missing, or is there text after the last '}'?)`)
    }
    return {
      value,
      positionOf: path => this.positionAt(this.offsetOf(value, start, path)),
      duplicateKeys: this.duplicates.map(d => ({ path: d.path, first: this.positionAt(d.first), second: this.positionAt(d.second) }))
    }
  }

  /** Where the value at `path` starts, or the nearest enclosing value that exists. */
  private offsetOf(root: unknown, rootAt: number, path: JsonPath): number {
    let node = root
    let offset = rootAt
    for (const segment of path) {
      const members = node !== null && typeof node === 'object' ? this.members.get(node) : undefined
      if (members === undefined) break
      if (Array.isArray(members)) {
        const index = Number(segment)
        if (!Number.isInteger(index) || index < 0 || index >= members.length) break
        offset = members[index]
        node = (node as unknown[])[index]
      } else {
        const key = String(segment)
        const keyAt = members.get(key)
        if (keyAt === undefined) break
        offset = this.valueAfterKey(keyAt)
        node = (node as Record<string, unknown>)[key]
      }
    }
    return offset
  }

  /** The start of the value that follows the key at `keyAt` (the text was read, so it is well formed). */
  private valueAfterKey(keyAt: number): number {
    let i = keyAt + 1
    while (this.text[i] !== '"') i += this.text[i] === '\\' ? 2 : 1
    i++
    while (' \t\n\r:'.includes(this.text[i])) i++
    return i
  }

  /** Reads the value at `at`, with everything nested in it. */
  private readValue(): unknown {
    for (;;) {
      let value: unknown
      const c = this.text[this.at]
      if (c === '{' || c === '[') {
        this.at++
        this.skipSpace()
        if (this.text[this.at] === (c === '{' ? '}' : ']')) {
          this.at++
          value = c === '{' ? {} : []
        } else if (c === '{') {
          const object: OpenObject = { kind: 'object', value: {}, keys: new Map(), key: '', commaAt: -1 }
          this.members.set(object.value, object.keys)
          this.open.push(object)
          this.readKey(object)
          continue
        } else {
          const list: OpenList = { kind: 'list', value: [], items: [this.at], commaAt: -1 }
          this.members.set(list.value, list.items)
          this.open.push(list)
          continue
        }
      } else {
        value = this.readScalar()
      }
      // A value is complete: hand it to the container it is in, and close every container it completes.
      for (;;) {
        const container = this.open.at(-1)
        if (container === undefined) return value
        if (this.addToContainer(container, value)) break
        this.open.pop()
        value = container.value
      }
    }
  }

  /**
   * Stores a finished member; then either moves to the next one (true: a value is expected at `at`)
   * or consumes the closing bracket (false: the container is finished).
   */
  private addToContainer(container: Open, value: unknown): boolean {
    if (container.kind === 'object') {
      const key = container.key
      // defineProperty, not assignment: a "__proto__" key must stay a plain (and then unknown) field.
      Object.defineProperty(container.value, key, { value, enumerable: true, writable: true, configurable: true })
      this.skipSpace()
      const c = this.text[this.at]
      if (c === ',') {
        container.commaAt = this.at++
        this.readKey(container)
        return true
      }
      if (c === '}') {
        this.at++
        return false
      }
      if (c === '"') this.fail(this.at, `expected ',' between properties: add a ',' after the value of ${JSON.stringify(key)}`)
      if (c === undefined) this.fail(this.at, "the file ends inside an object: a '}' is missing")
      this.fail(this.at, `expected ',' or '}' after the value of ${JSON.stringify(key)}, found ${this.describe(this.at)}`)
    }
    container.value.push(value)
    this.skipSpace()
    const c = this.text[this.at]
    if (c === ',') {
      container.commaAt = this.at++
      this.skipSpace()
      if (this.text[this.at] === ']') this.fail(container.commaAt, "trailing comma before ']': remove this ',' after the last item")
      container.items.push(this.at)
      return true
    }
    if (c === ']') {
      this.at++
      return false
    }
    const last = container.value.length - 1
    if (c === '{' || c === '"' || c === '[') this.fail(this.at, `expected ',' between items: add a ',' after item ${last}`)
    if (c === undefined) this.fail(this.at, "the file ends inside a list: a ']' is missing")
    this.fail(this.at, `expected ',' or ']' after item ${last}, found ${this.describe(this.at)}`)
  }

  /** Reads `"key":` up to the start of its value, noting a key the object already has. */
  private readKey(object: OpenObject): void {
    this.skipSpace()
    const keyAt = this.at
    if (this.text[keyAt] !== '"') {
      if (this.text[keyAt] === '}') this.fail(object.commaAt, "trailing comma before '}': remove this ',' after the last property")
      if (this.text[keyAt] === "'") this.fail(keyAt, 'property names need double quotes ("), not single quotes (\')')
      if (this.text[keyAt] === '/' && (this.text[keyAt + 1] === '/' || this.text[keyAt + 1] === '*')) this.fail(keyAt, 'JSON has no comments; remove it')
      this.fail(keyAt, `expected a property name in double quotes, found ${this.describe(keyAt)}`)
    }
    const key = this.readString()
    this.skipSpace()
    if (this.text[this.at] !== ':') this.fail(this.at, `expected ':' after the property name ${JSON.stringify(key)}, found ${this.describe(this.at)}`)
    this.at++
    this.skipSpace()
    const earlier = object.keys.get(key)
    if (earlier !== undefined && this.open.length - 1 <= this.duplicateKeyDepth) {
      object.firstKeys ??= new Map()
      if (!object.firstKeys.has(key)) object.firstKeys.set(key, earlier)
      object.path ??= this.pathOfOpen(this.open.length - 1)
      this.duplicates.push({ path: [...object.path, key], first: object.firstKeys.get(key) as number, second: keyAt })
    }
    // The latest occurrence is the one JSON.parse keeps, so it is the one problems point at.
    object.keys.set(key, keyAt)
    object.key = key
  }

  /** The path of the open container at `depth`: the member each container above it is reading. */
  private pathOfOpen(depth: number): JsonPath {
    const path: Array<string | number> = []
    for (let i = 0; i < depth; i++) {
      const container = this.open[i]
      path.push(container.kind === 'object' ? container.key : container.value.length)
    }
    return path
  }

  private readScalar(): unknown {
    const c = this.text[this.at]
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
    if (c === "'") this.fail(this.at, 'strings need double quotes ("), not single quotes (\')')
    if (c === '/' && (this.text[this.at + 1] === '/' || this.text[this.at + 1] === '*')) this.fail(this.at, 'JSON has no comments; remove it')
    if (c === undefined) this.fail(this.at, 'the file ends where a value was expected (is it cut off?)')
    this.fail(this.at, `expected a value (a "string", a number, true, false, null, {...} or [...]), found ${this.describe(this.at)}`)
  }

  private readString(): string {
    const start = this.at
    this.at++ // opening quote
    for (;;) {
      const c = this.text[this.at]
      if (c === undefined) this.fail(start, "this string is never closed: a '\"' is missing")
      if (c === '"') break
      if (c === '\\') {
        this.at += 2
        continue
      }
      if (c === '\n' || c === '\r') this.fail(start, "this string is not closed before the end of its line: a '\"' is missing (a line break inside a string is written \\n)")
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

  // Every problem needs a line and column: counting lines from the start for each one made a file
  // with thousands of problems take minutes, so the line starts are found once and searched.
  private positionAt(offset: number): TextPosition {
    if (this.lineStarts === undefined) {
      this.lineStarts = [0]
      for (let i = this.text.indexOf('\n'); i !== -1; i = this.text.indexOf('\n', i + 1)) this.lineStarts.push(i + 1)
    }
    // The last line that starts at or before `offset`.
    let low = 0
    let high = this.lineStarts.length - 1
    while (low < high) {
      const middle = (low + high + 1) >> 1
      if (this.lineStarts[middle] <= offset) low = middle
      else high = middle - 1
    }
    return { line: low + 1, column: offset - this.lineStarts[low] + 1 }
  }

  private fail(offset: number, reason: string): never {
    const position = this.positionAt(offset)
    const lineStart = this.text.lastIndexOf('\n', offset - 1) + 1
    const lineEnd = this.text.indexOf('\n', offset)
    const lineText = this.text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd).replace(/\r$/, '')
    throw new JsonSyntaxError(reason, position, lineText)
  }
}
