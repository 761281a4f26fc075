/**
 * Host key verification: a server is trusted when the key it presents is listed for it in the
 * `known-hosts` input (OpenSSH known_hosts text) or its SHA256 fingerprint is one of the server's
 * registry `hostKey`s.
 */
import { createHash, createHmac } from 'node:crypto'

export interface KnownHostEntry {
  /** Host patterns of the line (`example.com`, `[10.0.0.5]:2222`, `*.acme.internal`, `|1|salt|hash`). */
  patterns: string[]
  keyType: string
  key: Buffer
  revoked: boolean
}

/** SHA256 fingerprint in OpenSSH's notation: `SHA256:` + unpadded base64. */
export function fingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '')
}

/** Parses known_hosts text; comments, blank lines, `@cert-authority` lines and unreadable lines are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = []
  for (const raw of text.split(/\r?\n/)) {
    const fields = raw.trim().split(/\s+/)
    if (!fields[0] || fields[0].startsWith('#')) continue
    let revoked = false
    if (fields[0].startsWith('@')) {
      if (fields[0] !== '@revoked') continue
      revoked = true
      fields.shift()
    }
    const [hosts, keyType, keyText] = fields
    if (!hosts || !keyType || !keyText || !/^[A-Za-z0-9+/]+=*$/.test(keyText)) continue
    entries.push({ patterns: hosts.split(','), keyType, key: Buffer.from(keyText, 'base64'), revoked })
  }
  return entries
}

/** The name known_hosts uses for a host and port: `host` on port 22, `[host]:port` otherwise. */
function hostPortName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function globMatches(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${re}$`, 'i').test(name)
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|')
    if (!salt || !hash) return false
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64')
    return digest === hash
  }
  return globMatches(pattern, name)
}

/** True when the entry's patterns match the host (a `!pattern` match excludes it). */
export function entryMatchesHost(entry: KnownHostEntry, host: string, port: number): boolean {
  const name = hostPortName(host, port)
  let matched = false
  for (const pattern of entry.patterns) {
    if (pattern.startsWith('!')) {
      if (patternMatches(pattern.slice(1), name)) return false
    } else if (patternMatches(pattern, name)) {
      matched = true
    }
  }
  return matched
}

export type HostKeyVerdict =
  | { trusted: true; fingerprint: string; via: 'known-hosts' | 'hostKey' | 'unchecked' }
  | { trusted: false; fingerprint: string; reason: string }

export interface HostKeyPolicy {
  knownHosts: KnownHostEntry[]
  /** Fingerprints from the server's registry entry. */
  hostKeys: string[]
  strict: boolean
}

/** Decides whether to trust the key a server presented. */
export function verifyHostKey(policy: HostKeyPolicy, host: string, port: number, key: Buffer): HostKeyVerdict {
  const presented = fingerprint(key)
  const forHost = policy.knownHosts.filter(e => entryMatchesHost(e, host, port))
  if (forHost.some(e => e.revoked && e.key.equals(key))) {
    return { trusted: false, fingerprint: presented, reason: `the host key ${presented} of ${hostPortName(host, port)} is marked @revoked in known-hosts` }
  }
  if (forHost.some(e => !e.revoked && e.key.equals(key))) return { trusted: true, fingerprint: presented, via: 'known-hosts' }
  if (policy.hostKeys.includes(presented)) return { trusted: true, fingerprint: presented, via: 'hostKey' }
  if (!policy.strict) return { trusted: true, fingerprint: presented, via: 'unchecked' }

  const listed = forHost.length > 0 || policy.hostKeys.length > 0
  const reason = listed
    ? `HOST KEY MISMATCH: ${hostPortName(host, port)} presented ${presented}, which is neither in known-hosts nor in its ` +
      `registry hostKey. If the server was rebuilt, verify the new key out of band and update known-hosts or hostKey; ` +
      `otherwise someone may be intercepting the connection.`
    : `unknown host key: ${hostPortName(host, port)} presented ${presented} and neither known-hosts nor its registry ` +
      `entry lists a key for it. Add "hostKey": "${presented}" to the server in the registry, or add its line from ` +
      `'ssh-keyscan -p ${port} ${host}' to the known-hosts input (after checking the fingerprint out of band).`
  return { trusted: false, fingerprint: presented, reason }
}
