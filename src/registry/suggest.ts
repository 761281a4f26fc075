/**
 * "Did you mean …?" for misspelt field names and filter values: the closest known word, if it is
 * close enough to be a plausible typo.
 */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const wanted = normalize(word)
  // Nobody misspells a 100-character field name; and the distance table grows with the length.
  if (!wanted || wanted.length > 64) return undefined
  let best: { candidate: string; distance: number } | undefined
  for (const candidate of candidates) {
    const known = normalize(candidate)
    if (known === wanted) return candidate
    const distance = editDistance(wanted, known)
    if (!best || distance < best.distance) best = { candidate, distance }
  }
  if (!best) return undefined
  // A shortened value ("eu" for "eu-west") is no typo but just as clear, when only one word fits.
  const extended = candidates.filter(candidate => wanted.length >= 2 && normalize(candidate).startsWith(wanted))
  if (extended.length === 1) return extended[0]
  // About one typo per three letters; shorter words need a closer match to avoid silly guesses.
  const allowed = Math.max(1, Math.floor(Math.min(wanted.length, normalize(best.candidate).length) / 3))
  return best.distance <= allowed ? best.candidate : undefined
}

/** The sentence part for a suggestion: ` Did you mean "x"?` or nothing. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const match = closestMatch(word, candidates)
  return match === undefined ? '' : ` Did you mean "${match}"?`
}

/** Case, '-' and '_' do not count as differences: `health_url` and `HealthURL` both mean `healthUrl`. */
function normalize(word: string): string {
  return word.toLowerCase().replace(/[-_\s]/g, '')
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[rows - 1][cols - 1]
}
