/**
 * Quoting for the remote shell, in one place. Every value that comes from the registry or the
 * inputs reaches the server only as a single-quoted word built here; scripts themselves are
 * constant text (see commands.ts).
 */

const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/

/** Quotes one word so that a POSIX shell reads it back byte for byte as one argument. */
export function quote(word: string): string {
  if (word.includes('\0')) throw new Error('a shell argument cannot contain a NUL byte')
  if (PLAIN_WORD.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}

/** Joins words into one command line, each word quoted. */
export function shellJoin(words: readonly string[]): string {
  return words.map(quote).join(' ')
}
