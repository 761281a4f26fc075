/**
 * Reading and changing the image variable in a compose `.env` file. The file is handled as bytes
 * (latin1 keeps every byte as one char): only the value of the one variable changes, and its
 * quoting, an `export ` prefix, an inline comment and every other byte of the file stay as they were.
 */

interface Assignment {
  /** Offsets of the value (inside any quotes) in the file text. */
  valueStart: number
  valueEnd: number
  value: string
}

function findAssignment(text: string, variable: string): Assignment | undefined {
  const lines = /[^\n]*(\n|$)/g
  let found: Assignment | undefined
  for (let m = lines.exec(text); m && m[0] !== ''; m = lines.exec(text)) {
    const line = m[0].replace(/\r?\n$/, '')
    const head = /^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*/.exec(line)
    if (!head || head[1] !== variable) continue
    let start = m.index + head[0].length
    const rest = line.slice(head[0].length)
    let end: number
    const quoteChar = rest[0]
    if ((quoteChar === '"' || quoteChar === "'") && rest.indexOf(quoteChar, 1) > 0) {
      start += 1
      end = start + rest.indexOf(quoteChar, 1) - 1
    } else {
      // Unquoted: the value ends at an inline comment (" #") or trailing blanks.
      const comment = rest.search(/[ \t]+#/)
      const raw = comment >= 0 ? rest.slice(0, comment) : rest
      end = start + raw.replace(/[ \t]+$/, '').length
    }
    // Compose uses the last assignment of a variable; so do we.
    found = { valueStart: start, valueEnd: end, value: text.slice(start, end) }
  }
  return found
}

/** The image reference the `.env` file names, or undefined when the variable is not set there. */
export function readImageVariable(env: Buffer, variable: string): string | undefined {
  return findAssignment(env.toString('latin1'), variable)?.value
}

/** The same file with only the variable's value replaced. Throws when the variable is not there. */
export function replaceImageVariable(env: Buffer, variable: string, image: string): Buffer {
  const text = env.toString('latin1')
  const at = findAssignment(text, variable)
  if (!at) throw new Error(`.env has no ${variable}= line`)
  return Buffer.from(text.slice(0, at.valueStart) + image + text.slice(at.valueEnd), 'latin1')
}
