import { formatProblems, UserError } from '../errors.js'
import type { SingleHost } from '../settings.js'
import { checkServerField, type ServerField } from './load.js'
import { SERVER_DEFAULTS, type Registry } from './types.js'

/** Where a single host comes from, for messages that would otherwise name a registry file. */
export const SINGLE_HOST_SOURCE = 'the inputs host, port, user and deployment-path'
export const SINGLE_HOST_TENANT = 'default'

/**
 * The Phase 1 setup without a registry file: one server from the `host`, `port`, `user` and
 * `deployment-path` inputs, held to the same rules as a registry entry.
 */
export function registryFromSingleHost(single: SingleHost): Registry {
  const problems: string[] = []
  const check = (input: string, field: ServerField, value: string | number | undefined): void => {
    if (value === undefined) return
    const allowed = checkServerField(field, value)
    if (allowed) problems.push(`Input "${input}" is ${JSON.stringify(value)}; allowed: ${allowed}.`)
  }
  check('host', 'host', single.host)
  check('port', 'port', single.port)
  check('user', 'user', single.user)
  check('deployment-path', 'path', single.path)
  if (problems.length) throw new UserError(formatProblems('The single-server inputs are not valid', problems), problems)

  return {
    file: SINGLE_HOST_SOURCE,
    servers: [
      {
        name: serverNameFor(single.host),
        host: single.host,
        tenant: SINGLE_HOST_TENANT,
        port: single.port ?? SERVER_DEFAULTS.port,
        user: single.user ?? SERVER_DEFAULTS.user,
        path: single.path ?? SERVER_DEFAULTS.path,
        healthUrl: SERVER_DEFAULTS.healthUrl,
        services: [],
        imageVariable: SERVER_DEFAULTS.imageVariable,
        hostKeys: [],
        enabled: true,
        labels: {}
      }
    ]
  }
}

/** A registry-style name for a host: `Web-1.Example.com` → `web-1.example.com`, `2001:db8::1` → `2001-db8--1`. */
export function serverNameFor(host: string): string {
  const name = host
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63)
  return checkServerField('name', name) ? 'server' : name
}
