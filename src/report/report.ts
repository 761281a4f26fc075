/**
 * What the operator sees: one log group per server, the job summary table, step outputs and
 * error annotations.
 */
import * as core from '@actions/core'
import { shortId } from '../deploy/pipeline.js'
import type { ServerResult, Status } from '../deploy/result.js'
import type { Settings } from '../settings.js'

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
  unhealthy: '💔'
}

/** GitHub shows at most 10 error annotations per step; the rest are grouped into the last one. */
const MAX_ANNOTATIONS = 10
/** The job summary must stay under 1 MiB; keep a margin for the heading and notes. */
const SUMMARY_BUDGET_BYTES = 900 * 1024
const ANNOTATED: readonly Status[] = ['failed', 'rolled-back', 'unreachable', 'locked']

export function serverTitle(result: ServerResult): string {
  return `${result.server.name} (${result.server.tenant})`
}

/** One server's whole story as one log group, so parallel servers never interleave. */
export function logServer(result: ServerResult): void {
  core.startGroup(`${STATUS_SYMBOL[result.status]} ${serverTitle(result)}: ${result.status} in ${seconds(result.durationMs)}`)
  for (const line of result.log) core.info(line)
  if (result.error) core.info(`error: ${result.error}`)
  if (result.failedOutput) core.info(`last output of ${result.failedStep}:\n${result.failedOutput}`)
  core.endGroup()
}

export function countByStatus(results: ServerResult[]): Map<Status, number> {
  const counts = new Map<Status, number>()
  for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
  return counts
}

export function setOutputs(results: ServerResult[]): void {
  const json = results.map(r => ({
    name: r.server.name,
    tenant: r.server.tenant,
    region: r.server.region ?? null,
    host: r.server.host,
    status: r.status,
    previousImage: r.previousImage ?? null,
    deployedImage: r.deployedImage ?? null,
    durationMs: r.durationMs,
    error: r.error ?? null
  }))
  const counts = countByStatus(results)
  const n = (...statuses: Status[]) => statuses.reduce((sum, s) => sum + (counts.get(s) ?? 0), 0)
  core.setOutput('results', JSON.stringify(json))
  core.setOutput('deployed', n('deployed', 'unchanged'))
  core.setOutput('failed', n('failed', 'unreachable', 'locked'))
  core.setOutput('rolled-back', n('rolled-back'))
  core.setOutput('skipped', n('skipped'))
}

export function annotate(results: ServerResult[]): void {
  for (const r of results) for (const w of r.warnings ?? []) core.warning(w, { title: serverTitle(r) })
  const bad = results.filter(r => ANNOTATED.includes(r.status))
  const single = bad.length > MAX_ANNOTATIONS ? bad.slice(0, MAX_ANNOTATIONS - 1) : bad
  for (const r of single) core.error(r.error ?? r.status, { title: `${serverTitle(r)}: ${r.status}` })
  const rest = bad.slice(single.length)
  if (rest.length) {
    core.error(rest.map(r => `${serverTitle(r)}: ${r.status}: ${r.error ?? ''}`).join('\n'), { title: `${rest.length} more servers did not deploy` })
  }
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Escapes text for a Markdown table cell (HTML is allowed in the summary, so escape it too). */
function cell(text: string): string {
  return escapeHtml(text).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ')
}

function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}

function imageCell(r: ServerResult, settings: Settings): string {
  const id = (imageId?: string) => (imageId ? ` \`${shortId(imageId)}\`` : '')
  const before = r.previousImage ? `${cell(r.previousImage)}${id(r.previousImageId)}` : '—'
  const after = r.deployedImage ? `${cell(r.deployedImage)}${id(r.deployedImageId)}` : '—'
  const shown = before === after ? after : `${before} → ${after}`
  return r.status === 'rolled-back' && settings.mode === 'deploy' ? `${shown} (${cell(settings.image || 're-pulled image')} rolled back)` : shown
}

/** Health, and in `mode: status` also who holds the lock and the last history line. */
function healthCell(r: ServerResult): string {
  const parts = [r.health ?? '']
  if (r.lockHolder) parts.push(`🔒 locked by ${r.lockHolder}`)
  if (r.lastDeploy) parts.push(`last: ${r.lastDeploy.replace(/\t/g, ' ')}`)
  return cell(parts.filter(Boolean).join(' · '))
}

/** The summary as Markdown; rows and details are dropped (with a note) before it outgrows the budget. */
export function renderSummary(results: ServerResult[], settings: Settings, env: NodeJS.ProcessEnv = process.env): string {
  const what = settings.mode === 'deploy' ? `deploy of ${settings.image ? `\`${cell(settings.image)}\`` : 'the image each .env names'}` : settings.mode
  const commit = env.GITHUB_SHA ? ` at commit \`${env.GITHUB_SHA.slice(0, 12)}\`` : ''
  const counts = [...countByStatus(results)].map(([s, n]) => `${STATUS_SYMBOL[s]} ${n} ${s}`).join(' · ')
  const head = [`## OpenClaw ${settings.dryRun ? 'plan' : what}${commit}`, '', `${results.length} servers: ${counts || 'none'}`, '']
  const tableHead = ['| Tenant | Server | Region | Status | Image | Health | Duration |', '| --- | --- | --- | --- | --- | --- | --- |']
  let size = Buffer.byteLength([...head, ...tableHead].join('\n')) + 1024
  const rows: string[] = []
  for (const r of results) {
    const row = `| ${cell(r.server.tenant)} | ${cell(r.server.name)} | ${cell(r.server.region ?? '')} | ${STATUS_SYMBOL[r.status]} ${r.status} | ${imageCell(r, settings)} | ${healthCell(r)} | ${seconds(r.durationMs)} |`
    size += Buffer.byteLength(row) + 1
    if (size > SUMMARY_BUDGET_BYTES) break
    rows.push(row)
  }
  const details: string[] = []
  for (const r of results.filter(x => ANNOTATED.includes(x.status))) {
    const block = [
      `<details><summary>${STATUS_SYMBOL[r.status]} ${cell(serverTitle(r))}: ${r.status}${r.failedStep ? ` at ${cell(r.failedStep)}` : ''}</summary>`,
      '',
      cell(r.error ?? ''),
      '',
      `<pre>${escapeHtml(r.failedOutput ?? r.log.slice(-10).join('\n'))}</pre>`,
      '</details>'
    ].join('\n')
    size += Buffer.byteLength(block) + 1
    if (size > SUMMARY_BUDGET_BYTES) break
    details.push(block)
  }
  const notes: string[] = []
  if (rows.length < results.length) notes.push(`_${results.length - rows.length} more rows left out to stay under GitHub's 1 MiB summary limit; the counts above and the \`results\` output include every server._`)
  const detailed = results.filter(x => ANNOTATED.includes(x.status)).length
  if (details.length < detailed) notes.push(`_Details of ${detailed - details.length} more failed servers are in the step log._`)
  return [...head, ...tableHead, ...rows, '', ...details, ...notes, ''].join('\n')
}

export async function writeSummary(results: ServerResult[], settings: Settings): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  await core.summary.addRaw(renderSummary(results, settings)).write()
}
