import { formatProblems, UserError } from '../errors.js'
import type { Settings } from '../settings.js'
import { didYouMean } from './suggest.js'
import type { Registry, Server } from './types.js'

/** The servers a run works on, in registry order. */
export interface Selection {
  /** Matched by the filters and enabled: the servers to work on. */
  selected: Server[]
  /** Matched by the filters but `enabled: false`: reported as skipped, never contacted. */
  disabled: Server[]
}

type Filters = Settings['filters']

interface FilterKind {
  input: keyof Filters & string
  what: string
  valuesOf: (server: Server) => string | undefined
}

const FILTERS: FilterKind[] = [
  { input: 'tenants', what: 'tenant', valuesOf: server => server.tenant },
  { input: 'regions', what: 'region', valuesOf: server => server.region },
  { input: 'servers', what: 'server name', valuesOf: server => server.name }
]

/**
 * Applies the `tenants`, `regions` and `servers` inputs (a server must match every filter that is
 * set). A value that names nothing in the registry, or filters that leave no server to work on, are
 * errors: a typo must not turn a deploy into a silent no-op.
 */
export function selectServers(registry: Registry, filters: Filters): Selection {
  const problems: string[] = []
  for (const { input, what, valuesOf } of FILTERS) {
    const known = unique(registry.servers.map(valuesOf))
    for (const wanted of filters[input]) {
      if (known.includes(wanted)) continue
      problems.push(
        `Input "${input}" names ${JSON.stringify(wanted)}, but no server in ${registry.file} has that ${what}.` +
          didYouMean(wanted, known) +
          (known.length ? ` Known: ${listSome(known)}.` : ` No server in ${registry.file} has a ${what} at all.`)
      )
    }
  }
  if (problems.length) throw new UserError(formatProblems('The server filters do not match the registry', problems), problems)

  const matched = registry.servers.filter(server => FILTERS.every(({ input, valuesOf }) => filters[input].length === 0 || filters[input].includes(valuesOf(server) ?? '')))
  const selection: Selection = {
    selected: matched.filter(server => server.enabled),
    disabled: matched.filter(server => !server.enabled)
  }
  if (selection.selected.length) return selection

  const filterText = describeFilters(filters)
  const message = selection.disabled.length
    ? `Every server ${filterText ? `matching ${filterText} ` : `in ${registry.file} `}is disabled ("enabled": false): ` +
      `${listSome(selection.disabled.map(server => server.name))}. Enable one in ${registry.file} or change the filters.`
    : `No server matches ${filterText} together; each value exists, but not on the same server. ` +
      `Matching servers per filter: ${describeMatches(registry, filters)}. Change the filters so they overlap.`
  throw new UserError(message, [message])
}

function describeFilters(filters: Filters): string {
  return FILTERS.filter(({ input }) => filters[input].length)
    .map(({ input }) => `${input}=${filters[input].join(',')}`)
    .join(' and ')
}

function describeMatches(registry: Registry, filters: Filters): string {
  return FILTERS.filter(({ input }) => filters[input].length)
    .map(({ input, valuesOf }) => {
      const names = registry.servers.filter(server => filters[input].includes(valuesOf(server) ?? '')).map(server => server.name)
      return `${input} → ${listSome(names)}`
    })
    .join('; ')
}

/** A long fleet would bury the message; the first names are enough to spot a pattern. */
function listSome(values: string[], max = 20): string {
  return values.length > max ? `${values.slice(0, max).join(', ')} and ${values.length - max} more` : values.join(', ')
}

function unique(values: Array<string | undefined>): string[] {
  return [...new Set(values.filter((value): value is string => value !== undefined))]
}
