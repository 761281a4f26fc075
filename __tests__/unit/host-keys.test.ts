import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto'
import { describe, expect, it } from '@jest/globals'
import { fingerprint, parseKnownHosts, verifyHostKey } from '../../src/remote/host-keys.js'

/** An SSH wire-format ed25519 public key blob, as servers present it. */
function hostKeyBlob(): Buffer {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  const field = (b: Buffer) => Buffer.concat([Buffer.alloc(4, 0), b]).fill(0, 0, 0)
  const len = (b: Buffer) => {
    const out = field(b)
    out.writeUInt32BE(b.length, 0)
    return out
  }
  return Buffer.concat([len(Buffer.from('ssh-ed25519')), len(raw)])
}

const key = hostKeyBlob()
const other = hostKeyBlob()
const line = (hosts: string, k = key) => `${hosts} ssh-ed25519 ${k.toString('base64')}`
const policy = (knownHosts: string, hostKeys: string[] = [], strict = true) => ({ knownHosts: parseKnownHosts(knownHosts), hostKeys, strict })

describe('host key verification', () => {
  it('computes OpenSSH SHA256 fingerprints (unpadded base64)', () => {
    expect(fingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
  })

  it('trusts a key listed in known-hosts for the host, with [host]:port for other ports', () => {
    expect(verifyHostKey(policy(line('10.0.0.5')), '10.0.0.5', 22, key)).toMatchObject({ trusted: true, via: 'known-hosts' })
    expect(verifyHostKey(policy(line('[10.0.0.5]:2222')), '10.0.0.5', 2222, key)).toMatchObject({ trusted: true })
    expect(verifyHostKey(policy(line('10.0.0.5')), '10.0.0.5', 2222, key).trusted).toBe(false)
    expect(verifyHostKey(policy(`# comment\n\n${line('a.example,10.0.0.5')}`), '10.0.0.5', 22, key).trusted).toBe(true)
  })

  it('matches hashed known_hosts entries and wildcards, and honours negation', () => {
    const salt = randomBytes(20)
    const hash = createHmac('sha1', salt).update('gw.acme.example').digest('base64')
    expect(verifyHostKey(policy(line(`|1|${salt.toString('base64')}|${hash}`)), 'gw.acme.example', 22, key).trusted).toBe(true)
    expect(verifyHostKey(policy(line('*.acme.example')), 'gw.acme.example', 22, key).trusted).toBe(true)
    expect(verifyHostKey(policy(line('*.acme.example,!gw.acme.example')), 'gw.acme.example', 22, key).trusted).toBe(false)
  })

  it('trusts a key whose fingerprint is the registry hostKey', () => {
    expect(verifyHostKey(policy('', [fingerprint(key)]), 'h', 22, key)).toMatchObject({ trusted: true, via: 'hostKey' })
  })

  it('refuses a key that differs from the one listed, saying it may be an attack', () => {
    const verdict = verifyHostKey(policy(line('h', other), [fingerprint(other)]), 'h', 22, key)
    expect(verdict.trusted).toBe(false)
    if (!verdict.trusted) expect(verdict.reason).toMatch(/HOST KEY MISMATCH: h presented SHA256:/)
  })

  it('refuses an unknown host and says how to list it', () => {
    const verdict = verifyHostKey(policy(''), 'h', 2200, key)
    expect(verdict.trusted).toBe(false)
    if (!verdict.trusted) expect(verdict.reason).toContain(`"hostKey": "${fingerprint(key)}"`)
    if (!verdict.trusted) expect(verdict.reason).toContain('ssh-keyscan -p 2200 h')
  })

  it('refuses a revoked key even when the registry lists it', () => {
    expect(verifyHostKey(policy(`@revoked ${line('h')}`, [fingerprint(key)]), 'h', 22, key).trusted).toBe(false)
  })

  it('accepts any key only when strict checking is off', () => {
    expect(verifyHostKey(policy('', [], false), 'h', 22, key)).toMatchObject({ trusted: true, via: 'unchecked' })
  })
})
