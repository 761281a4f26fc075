/**
 * What the operator sees: one log group per server, the job summary table, step outputs and
 * error annotations. Everything a server returned is untrusted text and goes through
 * ./untrusted.ts on its way to any of them (DESIGN.md "Trust").
 */
import * as core from '@actions/core'
import { shortId } from '../deploy/describe.js'
import { isFailure, type ServerResult, type Status } from '../deploy/result.js'
import { formatAddress } from '../registry/load.js'
import { describeKey } from '../remote/deploy-keys.js'
import type { Settings } from '../settings.js'
import { bounded, htmlText, logQuoted, MAX_FIELD_CHARS, markdownCode, markdownText, multiLine, preText, singleLine } from '../untrusted.js'

/** Real Unicode symbols, never `:shortcode:`s, so they look the same wherever the text is shown. */
export const STATUS_SYMBOL: Record<Status, string> = {
  deployed: '✅',
  unchanged: '☑️',
  'rolled-back': '↩️',
  failed: '❌',
  unreachable: '🔌',
  locked: '🔒',
  skipped: '⏭️',
  planned: '📝',
  healthy: '💚',
  unhealthy: '💔',
  rotated: '🔑'
}

/** GitHub shows at most 10 error (and 10 warning) annotations per step; the rest are grouped into the last one. */
const MAX_ANNOTATIONS = 10
/** One annotation's message: enough for any error this action writes, short enough to read in the panel. */
const ANNOTATION_CHARS = 2_000
/** Each server's part of the grouped last annotation, and the whole of it. */
const GROUPED_ENTRY_CHARS = 300
const GROUPED_ANNOTATION_CHARS = 4_000
/** The job summary must stay under 1 MiB; keep a margin for the heading and notes. */
const SUMMARY_BUDGET_BYTES = 900 * 1024
/** How many characters of each server text a summary row shows, level by level, when the rows are too big. */
const ROW_FIELD_CHARS = [MAX_FIELD_CHARS, 300, 80]
/** GitHub keeps at most 1 MiB per step output; stay under it with room to spare. */
export const RESULTS_BUDGET_BYTES = 1_000_000

export function serverTitle(result: Pick<ServerResult, 'server'>): string {
  return `${result.server.name} (${result.server.tenant})`
}

/**
 * One server's whole story as one log group, so parallel servers never interleave. The group's
 * title is ours (registry names, status, time); its lines quote the server, so they are printed
 * inside a stop-commands block.
 */
export function logServer(result: ServerResult): void {
  core.startGroup(`${STATUS_SYMBOL[result.status]} ${serverTitle(result)}: ${result.status} in ${seconds(result.durationMs)}`)
  const lines = result.log.map(line => singleLine(line))
  if (result.error) lines.push(`error: ${singleLine(result.error)}`)
  if (result.failedOutput) lines.push(`last output of ${singleLine(result.failedStep ?? 'the failed step')}:\n${multiLine(result.failedOutput)}`)
  logQuoted(lines)
  core.endGroup()
}

export function countByStatus(results: ServerResult[]): Map<Status, number> {
  const counts = new Map<Status, number>()
  for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
  return counts
}

interface ResultEntry {
  name: string
  tenant: string
  region: string | null
  host: string
  /** The jump host the server was reached through, `host:port`; null when reached directly. */
  jump: string | null
  status: Status
  previousImage: string | null
  deployedImage: string | null
  /** Names of the `.env` variables (tenant-env, the gateway token) the run changed; never values. */
  changedVariables: string[]
  durationMs: number
  error: string | null
}

function cutError(error: string, chars: number): string {
  if (error.length <= chars) return error
  // at the last level a short word in place of the text, so no entry grows by being cut
  if (chars === 0) return error.length <= CUT_MARK.length ? error : CUT_MARK
  return `${error.slice(0, chars)}… [cut: the results output must stay under 1 MiB; the step log has the whole error]`
}
const CUT_MARK = '[cut: see the step log]'

/**
 * The largest size each item may take so that all fit in `budget`, items under it being left whole
 * (a max-min fair share): Infinity when everything fits as it is. One item, however big, can take no
 * more than the others leave it, and never their room.
 */
function fairShare(sizes: number[], budget: number): number {
  const sorted = [...sizes].sort((a, b) => a - b)
  let left = budget
  for (let i = 0; i < sorted.length; i++) {
    const share = left / (sorted.length - i)
    if (sorted[i]! > share) return Math.floor(share)
    left -= sorted[i]!
  }
  return Infinity
}

/**
 * `count` items, each rendered by `render(i, level)` (level 0 whole, each next level shorter), fitted
 * into `budget` bytes (`sep` bytes between items, counted for each): an item bigger than its fair
 * share is rendered at the first level that fits it. Only when even the shortest forms of the items
 * do not fit (far too many of them) are the last ones left out.
 */
function fitItems(count: number, levels: number, render: (i: number, level: number) => string, budget: number, sep = 1): { items: string[]; shortened: number; deepest: number } {
  const whole = Array.from({ length: count }, (_, i) => render(i, 0))
  const share = fairShare(
    whole.map(item => Buffer.byteLength(item) + sep),
    budget
  )
  const items: string[] = []
  let shortened = 0
  let deepest = 0
  let size = 0
  for (let i = 0; i < count; i++) {
    let item = whole[i]!
    let level = 0
    while (Buffer.byteLength(item) + sep > share && level < levels - 1) item = render(i, ++level)
    size += Buffer.byteLength(item) + sep
    if (size > budget) break
    if (level) shortened++
    deepest = Math.max(deepest, level)
    items.push(item)
  }
  return { items, shortened, deepest }
}

/** How much server text a `results` entry keeps, level by level, when the whole is too big. */
const RESULTS_CUTS: { error?: number; image: number; variables?: number }[] = [
  { image: MAX_FIELD_CHARS },
  { error: 500, image: 200 },
  { error: 100, image: 100 },
  { error: 0, image: 60, variables: 10 }
]

/**
 * The `results` output as JSON of at most `budget` bytes. Server text in it is one line and
 * bounded; if the whole is still too big, the entries bigger than their fair share have their error
 * text, image references (and at last their list of variables) cut shorter, so every server keeps
 * its entry; only if even that is too big (about 3,700 servers) are the last servers left
 * out. `note` says what was cut, for a warning.
 */
export function resultsJson(results: ServerResult[], budget = RESULTS_BUDGET_BYTES): { json: string; note?: string } {
  const entry = (r: ServerResult, level: number): ResultEntry => {
    const cut = RESULTS_CUTS[level]!
    const error = r.error === undefined ? null : singleLine(r.error)
    return {
      name: r.server.name,
      tenant: r.server.tenant,
      region: r.server.region ?? null,
      host: r.server.host,
      jump: r.server.jump ? formatAddress(r.server.jump.host, r.server.jump.port) : null,
      status: r.status,
      previousImage: r.previousImage === undefined ? null : singleLine(r.previousImage, cut.image),
      deployedImage: r.deployedImage === undefined ? null : singleLine(r.deployedImage, cut.image),
      changedVariables: (r.changedVariables ?? []).slice(0, cut.variables),
      durationMs: r.durationMs,
      error: error === null || cut.error === undefined ? error : cutError(error, cut.error)
    }
  }
  // `[` and `]`, and a comma after every entry but the last
  const { items, shortened, deepest } = fitItems(results.length, RESULTS_CUTS.length, (i, level) => JSON.stringify(entry(results[i]!, level)), budget - 1)
  const json = `[${items.join(',')}]`
  if (!shortened && items.length === results.length) return { json }
  const cut = RESULTS_CUTS[deepest]!
  const how = [
    cut.error === undefined ? '' : cut.error ? `error texts to ${cut.error} characters` : 'error texts left out',
    `image references to ${cut.image} characters`,
    cut.variables === undefined ? '' : `lists of changed variables to ${cut.variables} names`
  ].filter(Boolean)
  const notes = [
    shortened ? `the entries of ${shortened} servers are cut (at most: ${how.join(', ')}); the step log and the summary have more` : '',
    items.length < results.length ? `it lists only the first ${items.length} of ${results.length} servers; the counts include every server` : ''
  ].filter(Boolean)
  return { json, note: `The results output stays under GitHub's 1 MiB limit: ${notes.join('; ')}.` }
}

export function setOutputs(results: ServerResult[]): void {
  const { json, note } = resultsJson(results)
  if (note) core.warning(note)
  const counts = countByStatus(results)
  const n = (...statuses: Status[]) => statuses.reduce((sum, s) => sum + (counts.get(s) ?? 0), 0)
  core.setOutput('results', json)
  core.setOutput('deployed', n('deployed', 'unchanged', 'rotated'))
  core.setOutput('failed', n('failed', 'unreachable', 'locked'))
  core.setOutput('rolled-back', n('rolled-back'))
  core.setOutput('skipped', n('skipped'))
}

/**
 * Annotations carry server text (errors, warnings). @actions/core escapes CR and LF in them, but
 * the runner decodes them again for display, so they are replaced before, and bounded.
 */
export function annotate(results: ServerResult[]): void {
  const warnings = results.flatMap(r => (r.warnings ?? []).map(w => ({ r, text: w })))
  const shownWarnings = warnings.length > MAX_ANNOTATIONS ? warnings.slice(0, MAX_ANNOTATIONS - 1) : warnings
  for (const { r, text } of shownWarnings) core.warning(singleLine(text, ANNOTATION_CHARS), { title: serverTitle(r) })
  const moreWarnings = warnings.slice(shownWarnings.length)
  if (moreWarnings.length) {
    core.warning(grouped(moreWarnings.map(({ r, text }) => `${serverTitle(r)}: ${singleLine(text, GROUPED_ENTRY_CHARS)}`)), { title: `${moreWarnings.length} more warnings` })
  }

  const bad = results.filter(isFailure)
  const single = bad.length > MAX_ANNOTATIONS ? bad.slice(0, MAX_ANNOTATIONS - 1) : bad
  for (const r of single) core.error(singleLine(r.error ?? r.status, ANNOTATION_CHARS), { title: `${serverTitle(r)}: ${r.status}` })
  const rest = bad.slice(single.length)
  if (rest.length) {
    core.error(grouped(rest.map(r => `${serverTitle(r)}: ${r.status}: ${singleLine(r.error ?? '', GROUPED_ENTRY_CHARS)}`)), { title: `${rest.length} more servers did not deploy` })
  }
}

/** One line per server (the newlines are ours), cut to the grouped annotation's bound at a line end. */
function grouped(lines: string[]): string {
  const kept: string[] = []
  let size = 0
  for (const line of lines) {
    size += line.length + 1
    if (size > GROUPED_ANNOTATION_CHARS) {
      kept.push(`… and ${lines.length - kept.length} more (see the summary and the step log)`)
      break
    }
    kept.push(line)
  }
  return kept.join('\n')
}

function seconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const total = Math.round(ms / 1000)
  return `${Math.floor(total / 60)}m${total % 60}s`
}

/** An image reference with its short image ID, e.g. `ghcr.io/acme/openclaw:1.2.3 \`0a1b2c3d4e5f\``. */
function imageText(image?: string, imageId?: string, max = MAX_FIELD_CHARS): string {
  if (!image) return '—'
  return `${markdownText(image, max)}${imageId ? ` ${markdownCode(shortId(imageId))}` : ''}`
}

/** Before → after; a rolled-back row says which image failed where, and what runs now. */
function imageCell(r: ServerResult, settings: Settings, max = MAX_FIELD_CHARS): string {
  const now = imageText(r.deployedImage, r.deployedImageId, max)
  if (r.status === 'rolled-back') {
    // In `mode: rollback` the image that failed is the recorded one; its name is in the details.
    const withEnv = Object.keys(settings.tenantEnv).length ? ' with the new .env values' : ''
    const tried =
      settings.mode === 'deploy'
        ? `${settings.image ? markdownText(settings.image) : 'the re-pulled image'}${withEnv}`
        : settings.mode === 'rotate-token'
          ? 'the new gateway token'
          : 'the recorded rollback image'
    return `${tried} failed${r.failedStep ? ` at ${markdownText(r.failedStep)}` : ''}; now runs ${now}`
  }
  const before = imageText(r.previousImage, r.previousImageId, max)
  return before === now ? now : `${before} → ${now}`
}

/** `2025-05-01T10:03:12.345Z` → `2025-05-01 10:03 UTC`; anything else is shown as the (escaped) text it is. */
function timeText(iso: string, max = MAX_FIELD_CHARS): string {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d(?:\.\d+)?)?Z$/.exec(iso)
  return m ? `${m[1]} ${m[2]} UTC` : markdownText(iso, max)
}

/**
 * A link to a workflow run, only if `url` is exactly `<this run's server>/<this run's repository>/actions/runs/<digits>`
 * (GITHUB_SERVER_URL, GITHUB_REPOSITORY): a history line or lock note is server text, and must not
 * turn into a link to anywhere else, not even to a run of another repository. Outside Actions
 * (no GITHUB_REPOSITORY) nothing is a link.
 */
export function runLink(url: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const server = (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '')
  const repository = env.GITHUB_REPOSITORY ?? ''
  if (!/^https:\/\/[A-Za-z0-9.-]+(?::\d+)?$/.test(server)) return undefined
  // `o/../actions/runs/1` would resolve to another path: a repository is never all dots.
  const m = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/([A-Za-z0-9._-]{1,100})$/.exec(repository)
  if (!m || /^\.+$/.test(m[1]!)) return undefined
  const prefix = `${server}/${repository}/actions/runs/`
  if (!url.startsWith(prefix) || !/^\d{1,20}$/.test(url.slice(prefix.length))) return undefined
  return `[run ${url.slice(prefix.length)}](${url})`
}

/**
 * A run label (see describeRun: `<run URL> by <actor> commit <sha>`, or `local run by user@host`) as
 * `by actor (commit \`abc\`, [run 123](…))`. A label that does not look like one is shown as escaped text.
 */
function runLabelText(label: string, env: NodeJS.ProcessEnv, max: number): { who: string; refs: string } {
  const m = /^(local run|\S+) by (\S+)(?: commit ([0-9a-f]{7,40}))?$/.exec(label)
  if (!m) return { who: `by ${markdownText(label, max)}`, refs: '' }
  const [, where, actor, commit] = m
  const refs = [commit ? `commit ${markdownCode(commit)}` : '', where === 'local run' ? 'local run' : (runLink(where!, env) ?? markdownText(where!, max))].filter(Boolean)
  return { who: `by ${markdownText(actor!, max)}`, refs: `(${refs.join(', ')})` }
}

/**
 * The server's last history line (`time<TAB>status<TAB>from -> to<TAB>run label`) as
 * `2025-05-01 10:03 UTC: deployed a:1 → a:2 by actor (commit …, [run 123](…))`.
 */
export function lastDeployCell(line: string, env: NodeJS.ProcessEnv = process.env, max = MAX_FIELD_CHARS): string {
  // Each part is escaped (and bounded) on its own (markdownText), so only the whole is bounded here.
  const fields = bounded(line, 4 * max).split('\t')
  if (fields.length !== 4) return markdownText(line, max)
  const [time, status, change, label] = fields as [string, string, string, string]
  const [from, to, ...more] = change.split(' -> ')
  const what = to === undefined || more.length ? markdownText(change, max) : from === to ? markdownText(to, max) : `${markdownText(from!, max)} → ${markdownText(to, max)}`
  const run = runLabelText(label, env, max)
  return `${timeText(time, max)}: ${markdownText(status, max)} ${what} ${run.who} ${run.refs}`.trim()
}

/** A lock note (`<run label> since <time> token=<hex>`) as `held by actor since … (commit …, [run …](…))`. */
export function lockCell(holder: string, env: NodeJS.ProcessEnv = process.env, max = MAX_FIELD_CHARS): string {
  const m = /^(.*) since (\S+) token=[0-9a-f]+$/.exec(singleLine(holder, 2 * max))
  if (!m) return markdownText(holder, max)
  const run = runLabelText(m[1]!, env, max)
  return `held ${run.who} since ${timeText(m[2]!, max)} ${run.refs}`.trim()
}

/** The heading names what ran, the commit, the trigger and how long the whole run took. */
function heading(settings: Settings, env: NodeJS.ProcessEnv, runMs?: number): string {
  const what = settings.dryRun
    ? 'plan'
    : settings.mode === 'deploy'
      ? `deploy of ${settings.image ? markdownCode(settings.image, { table: false }) : 'the image each .env names'}`
      : settings.mode === 'rotate-key' && settings.keyRotation
        ? `deploy key rotation to ${markdownCode(describeKey(settings.keyRotation.next), { table: false })}`
        : markdownText(settings.mode)
  const commit = env.GITHUB_SHA ? ` at commit ${markdownCode(env.GITHUB_SHA.slice(0, 12), { table: false })}` : ''
  const facts = [env.GITHUB_EVENT_NAME ? `trigger: ${markdownText(env.GITHUB_EVENT_NAME)}` : '', runMs === undefined ? '' : `total ${seconds(runMs)}`].filter(Boolean)
  return `## OpenClaw ${what}${commit}${facts.map(f => ` · ${f}`).join('')}`
}

/**
 * The summary as Markdown, under its budget: a row bigger than its fair share is shortened (never
 * the rows after it dropped, unless even the shortest rows are too many); details are dropped (with
 * a note) once they would outgrow what is left.
 * `runMs` is the run's wall time so far, for the heading.
 */
export function renderSummary(results: ServerResult[], settings: Settings, env: NodeJS.ProcessEnv = process.env, runMs?: number): string {
  const counts = [...countByStatus(results)].map(([s, n]) => `${STATUS_SYMBOL[s]} ${n} ${s}`).join(' · ')
  const head = [heading(settings, env, runMs), '', `${results.length} servers: ${counts || 'none'}`, '']
  // `mode: status` reads the last deploy of each server, and who holds its lock if anyone does.
  const status = settings.mode === 'status' && !settings.dryRun
  const withLock = status && results.some(r => r.lockHolder)
  // Which variables of .env a run changed, by name (never a value), when it may change any.
  const withEnv = !settings.dryRun && (settings.mode === 'rotate-token' || (settings.mode === 'deploy' && Object.keys(settings.tenantEnv).length > 0))
  const columns = ['Tenant', 'Server', 'Region', 'Status', 'Image', ...(withEnv ? ['Changed in .env'] : []), 'Health', ...(status ? ['Last deploy'] : []), ...(withLock ? ['Lock'] : []), 'Duration']
  const tableHead = [`| ${columns.join(' | ')} |`, `|${' --- |'.repeat(columns.length)}`]
  // A row's server text (images, health, history, lock) is cut to each of these in turn until the
  // row fits its fair share of the summary; past the last, the row keeps only the registry's words.
  const row = (r: ServerResult, level: number): string => {
    const max = ROW_FIELD_CHARS[level]
    const cut = '…'
    const cells = [
      markdownText(r.server.tenant),
      markdownText(r.server.name) + (r.server.jump ? ` via ${markdownText(formatAddress(r.server.jump.host, r.server.jump.port))}` : ''),
      markdownText(r.server.region ?? ''),
      `${STATUS_SYMBOL[r.status]} ${r.status}`,
      max === undefined ? cut : imageCell(r, settings, max),
      ...(withEnv ? [!r.changedVariables?.length ? '—' : max === undefined ? `${r.changedVariables.length} variables` : r.changedVariables.map(name => markdownCode(name)).join(', ')] : []),
      max === undefined ? cut : markdownText(r.health ?? '', max),
      ...(status ? [!r.lastDeploy ? '—' : max === undefined ? cut : lastDeployCell(r.lastDeploy, env, max)] : []),
      ...(withLock ? [!r.lockHolder ? '' : max === undefined ? cut : lockCell(r.lockHolder, env, max)] : []),
      seconds(r.durationMs)
    ]
    return `| ${cells.join(' | ')} |`
  }
  let size = Buffer.byteLength([...head, ...tableHead].join('\n')) + 1024
  const fitted = fitItems(results.length, ROW_FIELD_CHARS.length + 1, (i, level) => row(results[i]!, level), SUMMARY_BUDGET_BYTES - size)
  const rows = fitted.items
  size += rows.reduce((sum, r) => sum + Buffer.byteLength(r) + 1, 0)
  const details: string[] = []
  for (const r of results.filter(isFailure)) {
    const output =
      r.failedOutput ??
      r.log
        .slice(-10)
        .map(line => singleLine(line))
        .join('\n')
    // The paragraph starts with our words, so server text can never begin a heading, list or quote.
    const block = [
      `<details><summary>${STATUS_SYMBOL[r.status]} ${htmlText(serverTitle(r))}: ${r.status}${r.failedStep ? ` at ${htmlText(r.failedStep)}` : ''}</summary>`,
      '',
      ...(r.error ? [`**What happened:** ${markdownText(r.error)}`, ''] : []),
      ...(output ? [`<pre>${preText(output)}</pre>`] : []),
      '</details>'
    ].join('\n')
    size += Buffer.byteLength(block) + 2
    if (size > SUMMARY_BUDGET_BYTES) break
    details.push(block)
  }
  const notes: string[] = []
  if (fitted.shortened) notes.push(`_${fitted.shortened} rows shortened (… marks what is cut) to stay under GitHub's 1 MiB summary limit; the step log has their whole text._`)
  if (rows.length < results.length)
    notes.push(`_${results.length - rows.length} more rows left out to stay under GitHub's 1 MiB summary limit; the counts above and the \`results\` output include every server._`)
  const detailed = results.filter(isFailure).length
  if (details.length < detailed) notes.push(`_Details of ${detailed - details.length} more failed servers are in the step log._`)
  // Blank lines between blocks: a line right after `</details>` would still belong to that HTML block.
  return [...head, ...tableHead, ...rows, '', ...details.flatMap(d => [d, '']), ...notes.flatMap(n => [n, ''])].join('\n')
}

export async function writeSummary(results: ServerResult[], settings: Settings, runMs?: number): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  await core.summary.addRaw(renderSummary(results, settings, process.env, runMs)).write()
}
