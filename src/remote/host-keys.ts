/**
 * Host key verification: a server is trusted when the key it presents is listed for it in the
 * `known-hosts` input (OpenSSH known_hosts text) or its SHA256 fingerprint is one of the server's
 * registry `hostKey`s. A host that lists keys but presents another one is always refused; only a
 * host that lists none passes with `strict-host-key-checking` off.
 *
 * A server holds several host keys (ed25519, ECDSA, RSA) and shows the one of the first type the
 * client asks for, so the client asks only for the types listed for the host, as OpenSSH does.
 */
import { createHash, createHmac } from 'node:crypto'

export interface KnownHostEntry {
  /** Host patterns of the line (`example.com`, `[10.0.0.5]:2222`, `*.acme.internal`, `|1|salt|hash`). */
  patterns: string[]
  keyType: string
  key: Buffer
  revoked: boolean
}

/**
 * ssh2's host key algorithms for each key type a known_hosts line names, in ssh2's order of
 * preference. One RSA key serves three signature algorithms; OpenSSH 8.8 and later refuse the SHA-1
 * one (`ssh-rsa`), so the SHA-2 ones come first. DSA is obsolete: ssh2 asks for it only when told to.
 */
const ALGORITHMS_BY_KEY_TYPE: ReadonlyArray<readonly [keyType: string, algorithms: readonly string[]]> = [
  ['ssh-ed25519', ['ssh-ed25519']],
  ['ecdsa-sha2-nistp256', ['ecdsa-sha2-nistp256']],
  ['ecdsa-sha2-nistp384', ['ecdsa-sha2-nistp384']],
  ['ecdsa-sha2-nistp521', ['ecdsa-sha2-nistp521']],
  ['ssh-rsa', ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']],
  ['ssh-dss', ['ssh-dss']]
]
const KEY_TYPES = ALGORITHMS_BY_KEY_TYPE.map(([type]) => type)
/** The types to ask for when the expected key's type is not known: ssh2's defaults. */
const DEFAULT_KEY_TYPES = KEY_TYPES.filter(type => type !== 'ssh-dss')

/** ssh2 `algorithms.serverHostKey` for these key types, most preferred first. */
export function hostKeyAlgorithms(keyTypes: readonly string[]): string[] {
  return ALGORITHMS_BY_KEY_TYPE.filter(([type]) => keyTypes.includes(type)).flatMap(([, algorithms]) => algorithms)
}

/** The key type named inside an SSH wire-format public key (its first string), e.g. `ssh-ed25519`. */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown'
  const length = key.readUInt32BE(0)
  return length > 0 && length < 64 && key.length >= 4 + length ? key.subarray(4, 4 + length).toString('latin1') : 'unknown'
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

/** Each wildcard pattern's expression, made once (a fleet's known-hosts is read once per server). */
const GLOBS = new Map<string, RegExp>()

function globMatches(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern.toLowerCase() === name.toLowerCase()
  let re = GLOBS.get(pattern)
  if (!re) {
    const source = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')
    re = new RegExp(`^${source}$`, 'i')
    GLOBS.set(pattern, re)
  }
  return re.test(name)
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
  | { trusted: true; fingerprint: string; keyType: string; via: 'known-hosts' | 'hostKey' | 'unchecked' }
  | {
      trusted: false
      fingerprint: string
      keyType: string
      reason: string
      /**
       * The key matched nothing, but only registry fingerprints (which do not say their key type)
       * could vouch for a key of another type: asking the server for the other types may find it.
       */
      otherTypesMayMatch: boolean
    }

export interface HostKeyPolicy {
  knownHosts: KnownHostEntry[]
  /** Fingerprints from the server's registry entry. */
  hostKeys: string[]
  strict: boolean
}

/** Per known-hosts list, the entries matching each host name looked up so far. */
const MATCHES = new WeakMap<KnownHostEntry[], Map<string, KnownHostEntry[]>>()

/**
 * The entries for the host (revoked ones included), found once per host name: every connection
 * looks its host up several times, and scanning a 1,000-line known-hosts for each of 1,000 servers
 * each time cost seconds of CPU and a hundred MB of garbage.
 */
function entriesFor(knownHosts: KnownHostEntry[], host: string, port: number): KnownHostEntry[] {
  let byName = MATCHES.get(knownHosts)
  if (!byName) MATCHES.set(knownHosts, (byName = new Map()))
  const name = hostPortName(host, port)
  let found = byName.get(name)
  if (!found) byName.set(name, (found = knownHosts.filter(e => entryMatchesHost(e, host, port))))
  return found
}

/** The usable (not revoked) known_hosts entries for the host. */
function listedFor(policy: HostKeyPolicy, host: string, port: number): KnownHostEntry[] {
  return entriesFor(policy.knownHosts, host, port).filter(e => !e.revoked)
}

/** Key types of the entries, as the key itself says (the line's type field can be mistyped). */
function typesOf(entries: KnownHostEntry[]): string[] {
  return [...new Set(entries.map(e => keyTypeOf(e.key)))]
}

/**
 * The host key types to ask the server for, most preferred first: those known-hosts lists for the
 * host; with registry fingerprints (of unknown type) then every other type too; for a host that
 * lists nothing (refused, or let through with strict checking off) ssh2's defaults.
 */
export function keyTypesToOffer(policy: HostKeyPolicy, host: string, port: number): string[] {
  const listed = KEY_TYPES.filter(type => typesOf(listedFor(policy, host, port)).includes(type))
  if (policy.hostKeys.length > 0) return [...listed, ...DEFAULT_KEY_TYPES.filter(type => !listed.includes(type))]
  return listed.length > 0 ? listed : DEFAULT_KEY_TYPES
}

/** Decides whether to trust the key a server presented. */
export function verifyHostKey(policy: HostKeyPolicy, host: string, port: number, key: Buffer): HostKeyVerdict {
  const presented = fingerprint(key)
  const keyType = keyTypeOf(key)
  const name = hostPortName(host, port)
  const forHost = entriesFor(policy.knownHosts, host, port)
  if (forHost.some(e => e.revoked && e.key.equals(key))) {
    return { trusted: false, fingerprint: presented, keyType, otherTypesMayMatch: false, reason: `the host key ${presented} of ${name} is marked @revoked in known-hosts` }
  }
  const listed = listedFor(policy, host, port)
  if (listed.some(e => e.key.equals(key))) return { trusted: true, fingerprint: presented, keyType, via: 'known-hosts' }
  if (policy.hostKeys.includes(presented)) return { trusted: true, fingerprint: presented, keyType, via: 'hostKey' }

  if (listed.length > 0 || policy.hostKeys.length > 0) {
    // Listed but different is what an interception looks like: refused whatever strict checking says.
    const unusable = typesOf(listed).filter(type => !KEY_TYPES.includes(type))
    const reason =
      `HOST KEY MISMATCH: ${name} presented the ${keyType} key ${presented}, which is neither in known-hosts nor in its ` +
      `registry hostKey. If the server was rebuilt, verify the new key out of band and update known-hosts or hostKey; ` +
      `otherwise someone may be intercepting the connection.` +
      (unusable.length ? ` (known-hosts also lists ${unusable.join(', ')} keys for it, which this action cannot check.)` : '')
    return { trusted: false, fingerprint: presented, keyType, reason, otherTypesMayMatch: policy.hostKeys.length > 0 && !typesOf(listed).includes(keyType) }
  }
  if (!policy.strict) return { trusted: true, fingerprint: presented, keyType, via: 'unchecked' }
  const reason =
    `unknown host key: ${name} presented the ${keyType} key ${presented} and neither known-hosts nor its registry ` +
    `entry lists a key for it. Add "hostKey": "${presented}" to the server in the registry, or add its line from ` +
    `'ssh-keyscan -p ${port} ${host}' to the known-hosts input (after checking the fingerprint out of band).`
  return { trusted: false, fingerprint: presented, keyType, reason, otherTypesMayMatch: false }
}
