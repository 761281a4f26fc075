import { formatAddress } from './registry/load.js'
import type { Selection } from './registry/select.js'
import type { Server } from './registry/types.js'
import type { Mode, Settings } from './settings.js'

export type PlanAction = Mode | 'skip'

/** One server's place in the run. */
export interface PlanEntry {
  /** 1-based position: canaries first, then the other selected servers, then the skipped ones. */
  order: number
  server: Server
  action: PlanAction
  /** Worked on (and must succeed) before any non-canary server starts. */
  canary: boolean
  /** What the server runs afterwards, for people: the image reference, or how it is chosen. */
  image: string
  /** Why nothing is done on this server; set when `action` is 'skip'. */
  skipReason?: string
}

export interface Plan {
  mode: Mode
  entries: PlanEntry[]
  /** How many entries are canaries (the first ones). */
  canaries: number
}

export const REPULL_CURRENT_IMAGE = '(current image from .env, re-pulled)'
export const ROLLBACK_IMAGE = '(image recorded before the last deploy)'
export const UNCHANGED_IMAGE = '(unchanged)'
export const DISABLED_REASON = 'disabled in the registry ("enabled": false)'

/**
 * The ordered work of this run. Canaries are the first `canary` selected servers in registry order;
 * they only exist in modes that change servers, since `status` changes nothing worth guarding.
 */
export function buildPlan(selection: Selection, settings: Pick<Settings, 'mode' | 'image' | 'canary'>): Plan {
  const canaries = settings.mode === 'status' ? 0 : Math.min(settings.canary, selection.selected.length)
  const image = imageFor(settings)
  const entries: PlanEntry[] = selection.selected.map((server, index) => ({
    order: index + 1,
    server,
    action: settings.mode,
    canary: index < canaries,
    image
  }))
  for (const server of selection.disabled) {
    entries.push({ order: entries.length + 1, server, action: 'skip', canary: false, image: UNCHANGED_IMAGE, skipReason: DISABLED_REASON })
  }
  return { mode: settings.mode, entries, canaries }
}

function imageFor(settings: Pick<Settings, 'mode' | 'image'>): string {
  if (settings.mode === 'deploy') return settings.image || REPULL_CURRENT_IMAGE
  if (settings.mode === 'rollback') return ROLLBACK_IMAGE
  return UNCHANGED_IMAGE
}

const HEADERS = ['#', 'server', 'tenant', 'region', 'ssh', 'path', 'action / image', 'phase'] as const

/** The plan as a plain-text table, one line per server, for the log (dry-run prints it). */
export function formatPlan(plan: Plan, settings: Pick<Settings, 'dryRun' | 'maxParallel'>): string {
  const working = plan.entries.filter(entry => entry.action !== 'skip').length
  const skipped = plan.entries.length - working
  const phases =
    plan.canaries > 0
      ? `${plan.canaries} canar${plan.canaries === 1 ? 'y' : 'ies'} first; the other ${working - plan.canaries} start only if every canary succeeds`
      : 'no canary phase'
  const heading =
    `Plan: ${plan.mode} on ${working} server${working === 1 ? '' : 's'}` +
    `${skipped ? `, ${skipped} skipped` : ''} (${phases}; at most ${settings.maxParallel} at a time)` +
    (settings.dryRun ? '. Dry run: no server is contacted.' : '.')

  const rows = plan.entries.map(entry => [
    String(entry.order),
    entry.server.name,
    entry.server.tenant,
    entry.server.region ?? '-',
    `${entry.server.user}@${formatAddress(entry.server.host, entry.server.port)}`,
    entry.server.path,
    entry.action === 'skip' ? `skip: ${entry.skipReason ?? ''}` : `${entry.action} ${entry.image}`,
    entry.canary ? 'canary' : entry.action === 'skip' ? '' : plan.canaries > 0 ? 'after canaries' : ''
  ])
  // Without canaries every server is in the same phase: the column would say nothing.
  const headers: readonly string[] = plan.canaries > 0 ? HEADERS : HEADERS.slice(0, -1)
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map(row => row[column].length)))
  const line = (cells: readonly string[]): string =>
    cells
      .slice(0, headers.length)
      .map((cell, column) => cell.padEnd(widths[column]))
      .join('  ')
      .trimEnd()
  return [heading, line(headers), ...rows.map(line)].join('\n')
}
