import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto'
import { describe, expect, it } from '@jest/globals'
import { fingerprint, hostKeyAlgorithms, keyTypeOf, keyTypesToOffer, parseKnownHosts, verifyHostKey } from '../../src/remote/host-keys.js'

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

/** A wire-format key of another type; verification compares keys as opaque bytes. */
function typedBlob(type: string): Buffer {
  const word = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b])
  return Buffer.concat([word(Buffer.from(type)), word(randomBytes(64))])
}

const key = hostKeyBlob()
const other = hostKeyBlob()
const ecdsa = typedBlob('ecdsa-sha2-nistp256')
const rsa = typedBlob('ssh-rsa')
const line = (hosts: string, k = key) => `${hosts} ${keyTypeOf(k)} ${k.toString('base64')}`
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
    if (!verdict.trusted) expect(verdict.reason).toMatch(/HOST KEY MISMATCH: h presented the ssh-ed25519 key SHA256:/)
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

  it('with strict checking off, lets an unlisted host through with its fingerprint', () => {
    expect(verifyHostKey(policy('', [], false), 'h', 22, key)).toEqual({ trusted: true, via: 'unchecked', fingerprint: fingerprint(key), keyType: 'ssh-ed25519' })
    expect(verifyHostKey(policy(line('other-host', other), [], false), 'h', 22, key)).toMatchObject({ trusted: true, via: 'unchecked' })
  })

  it('with strict checking off, still refuses a listed host that presents another key', () => {
    for (const listed of [policy(line('h', other), [], false), policy('', [fingerprint(other)], false), policy(line('h', ecdsa), [], false)]) {
      const verdict = verifyHostKey(listed, 'h', 22, key)
      expect(verdict.trusted).toBe(false)
      if (!verdict.trusted) expect(verdict.reason).toMatch(/^HOST KEY MISMATCH: h presented the ssh-ed25519 key SHA256:.* someone may be intercepting/)
    }
  })

  it('reads the key type inside a wire-format key', () => {
    expect(keyTypeOf(key)).toBe('ssh-ed25519')
    expect(keyTypeOf(ecdsa)).toBe('ecdsa-sha2-nistp256')
    expect(keyTypeOf(Buffer.from('junk'))).toBe('unknown')
  })
})

describe('host key types asked for', () => {
  it('asks only for the types known-hosts lists for the host, in ssh2 preference order', () => {
    expect(keyTypesToOffer(policy(line('h', ecdsa)), 'h', 22)).toEqual(['ecdsa-sha2-nistp256'])
    expect(keyTypesToOffer(policy(line('h', rsa)), 'h', 22)).toEqual(['ssh-rsa'])
    expect(keyTypesToOffer(policy([line('h', rsa), line('h', ecdsa), line('h', key), line('other', other)].join('\n')), 'h', 22)).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa'])
  })

  it('names the RSA signature algorithms ssh2 knows, SHA-2 first', () => {
    expect(hostKeyAlgorithms(['ssh-rsa'])).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'])
    expect(hostKeyAlgorithms(['ssh-rsa', 'ssh-ed25519'])).toEqual(['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'])
  })

  it('asks for every type when a registry fingerprint (of unknown type) may match, listed types first', () => {
    const offer = keyTypesToOffer(policy(line('h', rsa), [fingerprint(ecdsa)]), 'h', 22)
    expect(offer).toEqual(['ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'])
    expect(keyTypesToOffer(policy(''), 'h', 22)).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'])
    expect(keyTypesToOffer(policy(`@revoked ${line('h', rsa)}`), 'h', 22)).toContain('ssh-ed25519')
  })

  it('tries other types only when a registry fingerprint could still vouch for one', () => {
    const mismatch = (p: ReturnType<typeof policy>) => {
      const verdict = verifyHostKey(p, 'h', 22, key)
      return !verdict.trusted && verdict.otherTypesMayMatch
    }
    expect(mismatch(policy('', [fingerprint(ecdsa)]))).toBe(true)
    expect(mismatch(policy(line('h', rsa), [fingerprint(ecdsa)]))).toBe(true)
    // known-hosts lists an ed25519 key for the host and this one differs: that is final
    expect(mismatch(policy(line('h', other), [fingerprint(ecdsa)]))).toBe(false)
    expect(mismatch(policy(line('h', ecdsa)))).toBe(false)
  })
})
