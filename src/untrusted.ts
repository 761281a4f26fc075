/**
 * Text a server returned (errors, command output, health, history lines, lock notes, image
 * references) may come from a compromised tenant (DESIGN.md "Trust"). Every place that shows such
 * text to a person goes through one of these helpers:
 * - the runner's log: `logQuoted` prints it between `::stop-commands::<token>` and `::<token>::`,
 *   so no line of it is read as a workflow command (a forged `::error::`, `::stop-commands::`,
 *   `::add-mask::`), with control characters already replaced;
 * - annotations and other one-line places: `singleLine`, so a CR, LF or ANSI escape cannot start a
 *   line of its own or repaint the log;
 * - the job summary: `markdownText`, `markdownCode`, `htmlText`, `preText`, so nothing becomes a
 *   link, image, HTML tag, emoji, mention, table row or paragraph.
 * Everything is also cut to a bound, so one server cannot flood the log, the summary or an output.
 */
import { randomBytes } from 'node:crypto'
import * as core from '@actions/core'

/** Longest one-line field shown anywhere (an error, a holder note, a history line, a warning). */
export const MAX_FIELD_CHARS = 2_000
/** Longest block of command output shown for one server. */
export const MAX_BLOCK_CHARS = 16_000

/**
 * Characters that must not reach a one-line place as themselves: C0 controls (CR and LF end a log
 * line; ESC starts ANSI sequences the log viewer renders), DEL, C1 controls (0x9B is a one-byte CSI
 * for some terminals), the Unicode line and paragraph separators, and bidi overrides/isolates,
 * which can make a log line or table cell read differently from what it holds.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** C0 controls and DEL become their visible Unicode "control pictures" (␍, ␊, ␛ …); others become �. */
function placeholder(char: string): string {
  const code = char.charCodeAt(0)
  if (code === 0x09) return ' '
  if (code < 0x20) return String.fromCharCode(0x2400 + code)
  if (code === 0x7f) return '\u2421'
  return '\ufffd'
}

/**
 * Cuts `text` to at most `max` characters (plus a note saying how much was cut). A surrogate pair
 * is never split, so the result is still valid UTF-16.
 */
export function bounded(text: string, max = MAX_FIELD_CHARS): string {
  if (text.length <= max) return text
  let end = Math.max(0, max)
  if (end > 0 && /[\ud800-\udbff]/.test(text[end - 1]!)) end--
  return `${text.slice(0, end)}… [${text.length - end} more characters cut]`
}

/** Server text for one line: every control character replaced by a visible placeholder, then bounded. */
export function singleLine(text: string, max = MAX_FIELD_CHARS): string {
  return bounded(text, max).replace(UNSAFE, placeholder)
}

/**
 * Server output of several lines (a step's last output): CRLF and bare CR become line breaks (compose
 * redraws progress lines with a bare CR), every other control character a placeholder; each line is
 * bounded, and the whole keeps its end, where the reason for a failure usually is.
 */
export function multiLine(text: string, max = MAX_BLOCK_CHARS): string {
  const lines = text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map(line => singleLine(line))
  let kept = lines.join('\n')
  if (kept.length > max) {
    let start = kept.length - max
    if (/[\udc00-\udfff]/.test(kept[start]!)) start++
    kept = `[${start} earlier characters cut] …${kept.slice(start)}`
  }
  return kept
}

/**
 * The runner's older command form, `##[error]…`, is also how its log marks errors and groups, and
 * the log viewer may draw such a line as one even inside a stop-commands block: a WORD JOINER
 * between the two `#` keeps the line's text and takes the marker away.
 */
const V1_MARKER = /^(\s*)##\[/gm

/** A fresh token for `::stop-commands::`: random, so text printed inside cannot end the block. */
export function stopCommandsToken(text = ''): string {
  for (;;) {
    const token = randomBytes(16).toString('hex')
    if (!text.includes(token)) return token
  }
}

/**
 * Prints lines that may carry server text so that the runner reads none of them as a command: a
 * `::stop-commands::` block with a fresh token. Each entry is made safe with `multiLine` (an entry
 * meant as one line should have gone through `singleLine` already).
 */
export function logQuoted(lines: string[], write: (line: string) => void = core.info): void {
  if (lines.length === 0) return
  const body = lines
    .map(line => multiLine(line))
    .join('\n')
    .replace(V1_MARKER, '$1#\u2060#[')
  const token = stopCommandsToken(body)
  write(`::stop-commands::${token}`)
  write(body)
  write(`::${token}::`)
}

/**
 * Breaks what GitHub's renderer turns into something else *after* Markdown, on the text itself:
 * emoji shortcodes (`:rocket:`; GitHub knows `:running:` and `:100:` too) and @mentions or e-mail
 * addresses. A WORD JOINER (U+2060, invisible) after the `:` or `@` is enough; `name@sha256:…`
 * digests are left as they are, as no mention or address looks like that.
 */
function breakShortcodes(text: string): string {
  return text.replace(/:(?=[\w+-]+:)/g, ':\u2060').replace(/@(?=[A-Za-z0-9])(?!sha(?:256|384|512):)/g, '@\u2060')
}

function escapeEntities(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/**
 * Text for a Markdown table cell or paragraph: one line, bounded, and escaped so it renders as the
 * same characters and nothing else. Backslash escapes stop emphasis, code, links and images
 * (`[`, `]`, `!`), strikethrough, math (`$`) and cell breaks (`|`); `&`, `<`, `>` become entities,
 * so there is no HTML; `\:` before `//` and `www\.` stop GFM's bare-URL autolinks. Also meant for
 * our own words, so nothing we write can render as markup by accident.
 */
export function markdownText(text: string, max = MAX_FIELD_CHARS): string {
  return escapeEntities(breakShortcodes(singleLine(text, max)).replace(/[\\`*_[\]~|$!#]/g, '\\$&'))
    .replace(/:(?=\/\/)/g, '\\:')
    .replace(/\b(www)\./gi, '$1\\.')
}

/**
 * Text as an inline code span (monospace, and GitHub renders nothing inside one: no emoji, no link):
 * one line, bounded, fenced by more backticks than any run inside. For a table cell (`table`) a `|`
 * is escaped as `\|`, which GFM turns back into `|` inside the cell's code span.
 */
export function markdownCode(text: string, { table = true, max = MAX_FIELD_CHARS }: { table?: boolean; max?: number } = {}): string {
  let body = singleLine(text, max)
  if (body === '') return ''
  if (table) body = body.replace(/\|/g, '\\|')
  const longestRun = Math.max(0, ...(body.match(/`+/g) ?? []).map(run => run.length))
  const fence = '`'.repeat(longestRun + 1)
  // A code span drops one space on each side; pad when the text starts or ends with a backtick or space.
  const pad = /^[` ]|[` ]$/.test(body) ? ' ' : ''
  return `${fence}${pad}${body}${pad}${fence}`
}

/** Text inside raw HTML such as `<summary>` (Markdown is not parsed there): one line, entities, no shortcodes. */
export function htmlText(text: string, max = MAX_FIELD_CHARS): string {
  return escapeEntities(breakShortcodes(singleLine(text, max)))
}

/** Command output inside `<pre>`: several lines, bounded, entities (GitHub renders no emoji inside `<pre>`). */
export function preText(text: string, max = MAX_BLOCK_CHARS): string {
  return escapeEntities(multiLine(text, max))
}
