import { formatProblems, UserError } from './errors.js'
import { NEW_TOKEN, type EnvValue } from './remote/commands.js'
import { describeKey } from './remote/deploy-keys.js'
import { describeRoute, loadRegistry } from './registry/load.js'
import { selectServers, type Selection } from './registry/select.js'
import { registryFromSingleHost } from './registry/single-host.js'
import { didYouMean } from './registry/suggest.js'
import type { Registry, Server } from './registry/types.js'
import { ALL_TENANTS, GATEWAY_TOKEN, tenantValues, type Mode, type Settings, type TenantEnv } from './settings.js'

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
  /** The `.env` variables this run sets on the server (tenant-env, the new token), by name only. */
  variables: string[]
}

export interface Plan {
  mode: Mode
  entries: PlanEntry[]
  /** How many entries are canaries (the first ones). */
  canaries: number
}

/**
 * The plan the inputs ask for: the registry file (or the one server of input `host`), checked,
 * filtered and ordered. The deploy step and its post step (src/cleanup.ts) both start here, so
 * they work on the same servers.
 */
export function planFromInputs(settings: Settings, log: (line: string) => void): Plan {
  let registry
  if (settings.singleHost) {
    log(`Input "host" is set: deploying to that one server; the registry file ${settings.serversFile} is not read.`)
    registry = registryFromSingleHost(settings.singleHost)
  } else {
    registry = loadRegistry(settings.serversFile)
  }
  checkTenantEnv(registry, settings.tenantEnv)
  return buildPlan(selectServers(registry, settings.filters), settings)
}

export const REPULL_CURRENT_IMAGE = '(current image from .env, re-pulled)'
export const ROLLBACK_IMAGE = '(image recorded before the last deploy)'
export const UNCHANGED_IMAGE = '(unchanged)'
export const RUNNING_IMAGE = '(the image that runs, restarted)'
export const DISABLED_REASON = 'disabled in the registry ("enabled": false)'

/**
 * The ordered work of this run. Canaries are the first `canary` selected servers in registry order;
 * they only exist in modes that change servers, since `status` changes nothing worth guarding.
 */
export function buildPlan(selection: Selection, settings: Pick<Settings, 'mode' | 'image' | 'canary'> & Partial<Pick<Settings, 'tenantEnv' | 'keyRotation'>>): Plan {
  const canaries = settings.mode === 'status' ? 0 : Math.min(settings.canary, selection.selected.length)
  const image = imageFor(settings)
  const entries: PlanEntry[] = selection.selected.map((server, index) => ({
    order: index + 1,
    server,
    action: settings.mode,
    canary: index < canaries,
    image,
    variables: variablesFor(server, settings)
  }))
  for (const server of selection.disabled) {
    entries.push({ order: entries.length + 1, server, action: 'skip', canary: false, image: UNCHANGED_IMAGE, skipReason: DISABLED_REASON, variables: [] })
  }
  return { mode: settings.mode, entries, canaries }
}

function imageFor(settings: Pick<Settings, 'mode' | 'image'> & Partial<Pick<Settings, 'keyRotation'>>): string {
  if (settings.mode === 'deploy') return settings.image || REPULL_CURRENT_IMAGE
  if (settings.mode === 'rotate-key') return rotationText(settings.keyRotation)
  if (settings.mode === 'rollback') return ROLLBACK_IMAGE
  if (settings.mode === 'rotate-token') return RUNNING_IMAGE
  return UNCHANGED_IMAGE
}

/** What `mode: rotate-key` does, for the plan: `(deploy key SHA256:… (ED25519) → SHA256:… (ECDSA); image unchanged)`. */
function rotationText(rotation: Settings['keyRotation']): string {
  if (!rotation) return UNCHANGED_IMAGE
  return `(deploy key ${rotation.current ? describeKey(rotation.current) : 'of ssh-private-key'} → ${describeKey(rotation.next)}; image unchanged)`
}

/**
 * What a server's `.env` gets set besides the image: its tenant's tenant-env, and in mode
 * rotate-token the gateway token (the one tenant-env gives, else a new one made on the server).
 */
export function envValuesFor(server: Server, settings: Pick<Settings, 'mode'> & Partial<Pick<Settings, 'tenantEnv'>>): Record<string, EnvValue> {
  const values: Record<string, EnvValue> = tenantValues(settings.tenantEnv ?? {}, server.tenant)
  if (settings.mode === 'rotate-token' && !(GATEWAY_TOKEN in values)) values[GATEWAY_TOKEN] = NEW_TOKEN
  return values
}

function variablesFor(server: Server, settings: Pick<Settings, 'mode'> & Partial<Pick<Settings, 'tenantEnv'>>): string[] {
  return settings.mode === 'deploy' || settings.mode === 'rotate-token' ? Object.keys(envValuesFor(server, settings)) : []
}

/**
 * Checks tenant-env against the whole registry (not only the servers this run selects: one secret
 * usually holds every tenant), before any connection: every tenant it names must exist, and no
 * server's image variable may be set through it (the image is the `image` input's, and a rollback
 * needs it to name the image that ran).
 */
export function checkTenantEnv(registry: Registry, tenantEnv: TenantEnv): void {
  const problems: string[] = []
  const known = [...new Set(registry.servers.map(server => server.tenant))]
  for (const tenant of Object.keys(tenantEnv)) {
    if (tenant === ALL_TENANTS || known.includes(tenant)) continue
    problems.push(
      `Input "tenant-env" names the tenant ${JSON.stringify(tenant)}, but no server in ${registry.file} has that tenant.${didYouMean(tenant, known)} Known tenants: ${known.join(', ') || 'none'}.`
    )
  }
  const reported = new Set<string>()
  for (const server of registry.servers) {
    for (const tenant of [ALL_TENANTS, server.tenant]) {
      const key = `${tenant}.${server.imageVariable}`
      if (!tenantEnv[tenant] || !(server.imageVariable in tenantEnv[tenant]) || reported.has(key)) continue
      reported.add(key)
      problems.push(
        `Input "tenant-env": ${key} sets the image variable of server ${server.name}; the image is set with the input "image" (and restored by a rollback). Remove ${server.imageVariable} from tenant-env.`
      )
    }
  }
  if (problems.length) throw new UserError(formatProblems('Input "tenant-env" does not match the registry', problems), problems)
}

const HEADERS = ['#', 'server', 'tenant', 'region', 'ssh', 'path', 'action / image', 'phase'] as const

/** The plan as a plain-text table, one line per server, for the log (dry-run prints it). */
export function formatPlan(plan: Plan, settings: Pick<Settings, 'dryRun' | 'maxParallel'>): string {
  const working = plan.entries.filter(entry => entry.action !== 'skip').length
  const skipped = plan.entries.length - working
  const phases = plan.canaries > 0 ? `${plan.canaries} canar${plan.canaries === 1 ? 'y' : 'ies'} first; the other ${working - plan.canaries} start only if every canary succeeds` : 'no canary phase'
  const heading =
    `Plan: ${plan.mode} on ${working} server${working === 1 ? '' : 's'}` +
    `${skipped ? `, ${skipped} skipped` : ''} (${phases}; at most ${settings.maxParallel} at a time)` +
    (settings.dryRun ? '. Dry run: no server is contacted.' : '.') +
    // the jump hosts' own authorized_keys are not the servers': a rotation leaves them as they are
    (plan.mode === 'rotate-key' && plan.entries.some(entry => entry.action !== 'skip' && entry.server.jump)
      ? ' Jump hosts are not changed: they keep accepting the key they accept now (jump-private-key, or ssh-private-key when that is empty).'
      : '')

  const rows = plan.entries.map(entry => [
    String(entry.order),
    entry.server.name,
    entry.server.tenant,
    entry.server.region ?? '-',
    describeRoute(entry.server),
    entry.server.path,
    entry.action === 'skip' ? `skip: ${entry.skipReason ?? ''}` : `${entry.action} ${entry.image}${entry.variables.length ? `; sets ${entry.variables.join(', ')} in .env` : ''}`,
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
