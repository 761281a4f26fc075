/**
 * The public half of a deploy key, derived in-process from the private key (ssh2's parser, the one
 * that logs in with it), in the two forms an operator meets it in: the `authorized_keys` words and
 * the fingerprint `ssh-keygen -l` prints. Nothing here keeps or shows private key material.
 */
import { createHash } from 'node:crypto'
import ssh2 from 'ssh2'

export interface PublicKey {
  /** The key type word of an `authorized_keys` line, e.g. `ssh-ed25519`. */
  type: string
  /** The base64 key blob of that line. */
  blob: string
  /** `SHA256:…`, as `ssh-keygen -l` shows it. */
  fingerprint: string
  /** The type as `ssh-keygen -l` names it in parentheses: `ED25519`, `ECDSA`, `RSA`. */
  label: string
}

/** A key type word and a base64 blob, as they may be passed to a server script (see authorized-keys.ts). */
export const KEY_TYPE_WORD = /^[a-z0-9][a-z0-9@.-]*$/
export const KEY_BLOB = /^[A-Za-z0-9+/]+={0,2}$/

/** Why a private key cannot be used, in words that do not quote it. */
export class UnusableKey extends Error {}

/**
 * The public key of `privateKey`. Throws UnusableKey when it is not a private key ssh2 can read
 * (a public key pasted by mistake, a wrong or missing passphrase, a format it does not know).
 */
export function publicKeyOf(privateKey: string, passphrase = ''): PublicKey {
  const parsed = ssh2.utils.parseKey(privateKey, passphrase || undefined)
  // (ssh2's reasons name the format or the passphrase, never the key's bytes)
  if (parsed instanceof Error) throw new UnusableKey(parsed.message)
  if (!parsed.isPrivateKey()) throw new UnusableKey('this is a public key; the private key is needed (the file without .pub, from -----BEGIN to -----END)')
  const wire = parsed.getPublicSSH()
  const type = parsed.type
  if (!KEY_TYPE_WORD.test(type)) throw new UnusableKey(`unexpected key type ${JSON.stringify(type)}`)
  return { type, blob: wire.toString('base64'), fingerprint: fingerprintOf(wire), label: labelOf(type) }
}

/** OpenSSH's SHA256 fingerprint of a public key blob: unpadded base64 of its SHA-256. */
export function fingerprintOf(wire: Buffer): string {
  return `SHA256:${createHash('sha256').update(wire).digest('base64').replace(/=+$/, '')}`
}

function labelOf(type: string): string {
  if (type === 'ssh-ed25519') return 'ED25519'
  if (type.startsWith('ecdsa-')) return 'ECDSA'
  if (type === 'ssh-rsa' || type.startsWith('rsa-')) return 'RSA'
  if (type === 'ssh-dss') return 'DSA'
  return type
}

/** `SHA256:… (ED25519)`, for plans, logs and messages. */
export function describeKey(key: PublicKey): string {
  return `${key.fingerprint} (${key.label})`
}
