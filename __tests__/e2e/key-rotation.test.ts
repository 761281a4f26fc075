// mode rotate-key on real servers: each sshd reads the deploy user's ~/.ssh/authorized_keys, and s2's
// sshd accepts only ed25519 keys (rig.sh pubkey-algorithms) while the new key is ECDSA, as on a
// server whose operator allows some key types only. Logins are checked with OpenSSH's own client.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, authorizedKeysFile, readFleet, resultsOf, rig, run, runAction, scratchDir, server, statusOf, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'

const SERVERS = ['s1', 's2', 's3']
/** s3's line carries options, as setup-server.sh's (restrict) and a hardened one's (from=) do. */
const S3_OPTIONS = 'restrict,from="10.200.0.1,127.0.0.1"'

let fleet: Fleet
let registryFile: string
let newKeyFile: string
let newPublic: string
let newFingerprint: string

function act(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction({ 'servers-file': registryFile, ...actionKeyInputs(fleet), mode: 'rotate-key', 'new-ssh-private-key': readFileSync(newKeyFile, 'utf8'), 'connect-timeout': '10', ...inputs })
}

/** Whether OpenSSH's client logs in to the server with this key alone (and as the registry's user). */
async function logsIn(name: string, keyFile: string): Promise<boolean> {
  const s = server(fleet, name)
  const options = [
    'IdentitiesOnly=yes',
    'IdentityAgent=none',
    'BatchMode=yes',
    'PasswordAuthentication=no',
    'StrictHostKeyChecking=yes',
    `UserKnownHostsFile=${fleet.knownHostsFile}`,
    'ConnectTimeout=10'
  ]
  const r = await run('ssh', ['-F', 'none', '-i', keyFile, ...options.flatMap(o => ['-o', o]), '-p', String(s.port), `${s.user}@${s.host}`, 'id -un'], { timeoutMs: 30_000 })
  if (r.code === 0) {
    expect(r.stdout.trim()).toBe(s.user)
    return true
  }
  if (/Permission denied \(publickey\)/.test(r.stderr)) return false
  throw new Error(`ssh ${name} with ${keyFile}: exit ${r.code}: ${r.stderr}`)
}

const keysOf = (name: string) => readFileSync(authorizedKeysFile(server(fleet, name)), 'utf8')
const words = (publicKey: string) => publicKey.trim().split(' ').slice(0, 2).join(' ')

/** No line of either private key in the log, stderr, the summary or the outputs. */
function expectNoPrivateKey(r: ActionRun): void {
  const shown = [r.stdout.replace(/^::add-mask::.*$/gm, ''), r.stderr, r.summary, JSON.stringify(r.outputs)].join('\n')
  const lines = [fleet.privateKeyFile, newKeyFile].flatMap(file => readFileSync(file, 'utf8').split('\n')).filter(line => line.length > 20 && !line.startsWith('-----'))
  expect(lines.length).toBeGreaterThan(2)
  expect(lines.filter(line => shown.includes(line))).toEqual([])
}

beforeAll(async () => {
  fleet = readFleet()
  registryFile = writeRegistry(fleet, SERVERS)
  await Promise.all(SERVERS.map(name => rig('reset', name)))
  const dir = scratchDir('keyrot')
  newKeyFile = join(dir, 'openclaw_deploy_new')
  const made = await run('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-C', 'e2e new deploy key', '-f', newKeyFile])
  if (made.code !== 0) throw new Error(`ssh-keygen: ${made.stderr}`)
  newPublic = readFileSync(`${newKeyFile}.pub`, 'utf8')
  newFingerprint = (await run('ssh-keygen', ['-lf', `${newKeyFile}.pub`])).stdout.split(' ')[1]!
  // s3: the deploy key's line with options, which the new key's line must carry too
  const s3 = authorizedKeysFile(server(fleet, 's3'))
  // (written as root into the file reset made: it stays the deploy user's, mode 600)
  const written = await run('bash', ['-c', 'printf "%s %s\\n" "$1" "$(cat "$2")" > "$3"', '-', S3_OPTIONS, fleet.publicKeyFile, s3])
  if (written.code !== 0) throw new Error(`writing ${s3}: ${written.stderr}`)
  // s2: its sshd accepts ed25519 keys only; the new key is ECDSA
  await rig('pubkey-algorithms', 's2', 'ssh-ed25519')
})

afterAll(async () => {
  await Promise.all(SERVERS.map(name => rig('reset', name)))
})

describe('rotating the deploy key', () => {
  it('a dry run shows the servers and the new key’s fingerprint, as ssh-keygen -l does, and touches nothing', async () => {
    const before = SERVERS.map(keysOf)
    const r = await act({ 'dry-run': 'true' })
    expect(r.code).toBe(0)
    expect(statusOf(r)).toEqual({ s1: 'planned', s2: 'planned', s3: 'planned' })
    expect(r.stdout).toContain(`→ ${newFingerprint} (ECDSA); image unchanged)`)
    expect(SERVERS.map(keysOf)).toEqual(before)
    expectNoPrivateKey(r)
  })

  it('moves s1 and s3 to the new key only; s2 refuses it and keeps the old key, without the new line', async () => {
    const s2Before = keysOf('s2')
    const r = await act({})
    expect(r.code).toBe(1)
    expect(statusOf(r)).toEqual({ s1: 'rotated', s2: 'failed', s3: 'rotated' })
    expect(r.outputs).toMatchObject({ deployed: '2', failed: '1' })
    const s2 = resultsOf(r).find(x => x.name === 's2')!
    expect(s2.error).toMatch(/^the new key SHA256:\S+ \(ECDSA\) could not log in: .*refused it .*PubkeyAcceptedAlgorithms.*removed again, and the current key \(ssh-private-key\) still works$/)
    expect(r.summary).toContain('🔑 2 rotated')
    expect(r.summary).toMatch(/^\| tenant-s2 \| s2 \|.*❌ failed/m)
    expect(r.summary).toContain(newFingerprint)
    expectNoPrivateKey(r)

    for (const name of ['s1', 's3']) {
      expect([name, await logsIn(name, newKeyFile)]).toEqual([name, true])
      expect([name, await logsIn(name, fleet.privateKeyFile)]).toEqual([name, false])
    }
    expect(keysOf('s1')).toMatch(new RegExp(`^${escape(words(newPublic))} openclaw-deploy rotated \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\n$`))
    expect(keysOf('s3')).toMatch(new RegExp(`^${escape(`${S3_OPTIONS} ${words(newPublic)}`)} openclaw-deploy rotated \\S+\\n$`))
    expect(await logsIn('s2', fleet.privateKeyFile)).toBe(true)
    expect(await logsIn('s2', newKeyFile)).toBe(false)
    expect(keysOf('s2')).toBe(s2Before)
  })

  it('run again: the rotated servers are unchanged, s2 fails the same way and is left as it was', async () => {
    const before = SERVERS.map(keysOf)
    const r = await act({})
    expect(statusOf(r)).toEqual({ s1: 'unchanged', s2: 'failed', s3: 'unchanged' })
    expect(SERVERS.map(keysOf)).toEqual(before)
    expectNoPrivateKey(r)
  })

  it('with the new key as ssh-private-key, the rotated servers work as before (mode status)', async () => {
    const r = await runAction({ ...actionKeyInputs(fleet), 'servers-file': writeRegistry(fleet, ['s1', 's3']), 'ssh-private-key': readFileSync(newKeyFile, 'utf8'), mode: 'status' })
    expect(statusOf(r)).toEqual({ s1: 'healthy', s3: 'healthy' })
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
