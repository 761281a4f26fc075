import { beforeEach, describe, expect, it, jest } from '@jest/globals'
import * as core from '../__fixtures__/core.js'

jest.unstable_mockModule('@actions/core', () => core)
const { UserError } = await import('../../src/errors.js')
const { readSettings, registryLoginFor, tenantValues } = await import('../../src/settings.js')

beforeEach(() => {
  jest.clearAllMocks()
})

const read = (inputs: Record<string, string>) => readSettings(name => inputs[name] ?? '')
const problems = (inputs: Record<string, string>): string[] => {
  try {
    read(inputs)
  } catch (error) {
    if (error instanceof UserError) return error.problems
    throw error
  }
  throw new Error('expected the inputs to be rejected')
}

describe('inputs', () => {
  it('applies the documented defaults', () => {
    expect(read({ 'ssh-private-key': 'k' })).toMatchObject({
      serversFile: '.github/servers/production.json',
      mode: 'deploy',
      maxParallel: 10,
      canary: 0,
      healthTimeout: 60,
      rollback: true,
      prune: true,
      strictHostKeyChecking: true,
      dryRun: false,
      filters: { tenants: [], regions: [], servers: [] }
    })
  })

  it('splits filters on commas and newlines', () => {
    expect(read({ 'ssh-private-key': 'k', tenants: 'acme, globex\ninitech,,' }).filters.tenants).toEqual(['acme', 'globex', 'initech'])
  })

  it.each([
    [{ mode: 'deploi' }, 'Input "mode" is "deploi"; allowed: deploy, rollback, status, rotate-token.'],
    [{ 'max-parallel': 'ten' }, 'Input "max-parallel" is "ten"; allowed: a whole number from 1 to 1000.'],
    [{ 'max-parallel': '0' }, 'Input "max-parallel" is "0"; allowed: a whole number from 1 to 1000.'],
    [{ rollback: 'maybe' }, 'Input "rollback" is "maybe"; allowed: true or false.'],
    [{ 'max-failures': '150%' }, 'Input "max-failures" is "150%"'],
    [{ image: 'ghcr.io/a/b:1; rm -rf /' }, 'Input "image" is "ghcr.io/a/b:1; rm -rf /"'],
    [{ port: '2222' }, 'Input "port" only applies together with "host"']
  ])('rejects %j', (inputs, message) => {
    expect(problems({ 'ssh-private-key': 'k', ...inputs }).join('\n')).toContain(message)
  })

  it('requires ssh-private-key unless it is a dry run, and reports every problem at once', () => {
    const found = problems({ mode: 'x', canary: '-1' })
    expect(found).toHaveLength(3)
    expect(found.join('\n')).toMatch(/Input "ssh-private-key" is required/)
    expect(read({ 'dry-run': 'true' }).dryRun).toBe(true)
  })

  it('reads max-failures as a count or a percentage', () => {
    expect(read({ 'ssh-private-key': 'k', 'max-failures': '2' }).maxFailures).toEqual({ kind: 'count', value: 2 })
    expect(read({ 'ssh-private-key': 'k', 'max-failures': '10%' }).maxFailures).toEqual({ kind: 'percent', value: 10 })
  })

  it('takes the single host from host, port, user and deployment-path', () => {
    expect(read({ 'ssh-private-key': 'k', host: 'gw.example', port: '2222', user: 'ops', 'deployment-path': '/srv/oc' }).singleHost).toEqual({
      host: 'gw.example',
      port: 2222,
      user: 'ops',
      path: '/srv/oc'
    })
  })
})

describe('tenant-env', () => {
  const tenantEnv = (value: unknown, more: Record<string, string> = {}) => ({ 'ssh-private-key': 'k', 'tenant-env': typeof value === 'string' ? value : JSON.stringify(value), ...more })
  const TOKEN = 'f'.repeat(64)

  /** What reading these inputs handed to core.setSecret (the fixture records it). */
  function masked(inputs: Record<string, string>): string[] {
    jest.clearAllMocks()
    try {
      read(inputs)
    } catch {
      // the masks are what this looks at
    }
    return core.setSecret.mock.calls.map(([secret]) => secret)
  }

  it('reads variables per tenant and for all; a tenant\'s own value wins', () => {
    const s = read(tenantEnv({ '*': { A: '1', B: 'all' }, acme: { B: 'mine', OPENCLAW_GATEWAY_TOKEN: TOKEN } }))
    expect(tenantValues(s.tenantEnv, 'acme')).toEqual({ A: '1', B: 'mine', OPENCLAW_GATEWAY_TOKEN: TOKEN })
    expect(tenantValues(s.tenantEnv, 'globex')).toEqual({ A: '1', B: 'all' })
    expect(read({ 'ssh-private-key': 'k' }).tenantEnv).toEqual({})
  })

  it('masks every value, and each line of one over several lines, before anything prints; never a name', () => {
    const masks = masked(tenantEnv({ acme: { KEY: 'line one\nline two', SHORT: '1' }, '*': { X: 'a"b$c' } }))
    expect(masks).toEqual(expect.arrayContaining(['line one\nline two', 'line one', 'line two', '1', 'a"b$c']))
    expect(masks.some(m => ['KEY', 'SHORT', 'X', 'acme'].includes(m))).toBe(false)
    // also when the input is no valid JSON: its whole text
    expect(masked(tenantEnv('{"acme": {"KEY": "s3cr3t-value"'))).toContain('{"acme": {"KEY": "s3cr3t-value"')
  })

  it.each([
    [{ acme: { CLAUDE_AI_SESSION_KEY: 42 } }, 'Input "tenant-env": acme.CLAUDE_AI_SESSION_KEY must be a string (write it in double quotes).'],
    [{ acme: { A: null } }, 'Input "tenant-env": acme.A must be a string.'],
    [{ acme: ['A'] }, 'Input "tenant-env": "acme" must be an object of variable names and string values'],
    [['acme'], 'Input "tenant-env" must be a JSON object of tenant names (or "*" for every tenant)'],
    [{ acme: { OK: 'x', '9LIVES': 'x' } }, 'Input "tenant-env": the 2nd name of acme is not a variable name (letters, digits and _, not starting with a digit); it is not shown'],
    [{ acme: { 'A.B': 'x' } }, 'the 1st name of acme is not a variable name'],
    [{ acme: { A: 'x\u0000' } }, 'Input "tenant-env": acme.A holds a NUL character'],
    [{ acme: { A: 'x'.repeat(70000) } }, 'Input "tenant-env": acme.A is 70000 bytes long; a value may have at most 65536.'],
    [{ '*': { OPENCLAW_GATEWAY_TOKEN: TOKEN } }, 'Input "tenant-env": *.OPENCLAW_GATEWAY_TOKEN: every tenant needs a gateway token of its own'],
    [{ acme: { OPENCLAW_GATEWAY_TOKEN: 'short' } }, 'Input "tenant-env": acme.OPENCLAW_GATEWAY_TOKEN is 5 characters long; a gateway token needs at least 32'],
    ['{"acme": {"A": "1", "A": "2"}}', 'Input "tenant-env": acme.A is given twice (lines 1 and 1); JSON would keep only the last.']
  ])('rejects %j, naming where, never a value', (value, message) => {
    const found = problems(tenantEnv(value)).join('\n')
    expect(found).toContain(message)
    expect(found).not.toMatch(/x{10}|short|9LIVES/)
  })

  it('says where the JSON is broken without showing any of it', () => {
    const found = problems(tenantEnv('{"acme": {"A": "s3cr3t" "B": "x"}}'))
    expect(found).toEqual(['Input "tenant-env" is not valid JSON (line 1, column 25; the text is not shown, as it holds secrets). Check it with e.g. jq.'])
  })

  it('takes mode rotate-token, without image; and applies to deploy and rotate-token only', () => {
    expect(read({ 'ssh-private-key': 'k', mode: 'rotate-token' }).mode).toBe('rotate-token')
    expect(problems({ 'ssh-private-key': 'k', mode: 'rotate-token', image: 'reg/a:1' }).join('\n')).toContain('Input "image" does not apply to mode "rotate-token"')
    for (const mode of ['rollback', 'status']) {
      expect(problems(tenantEnv({ acme: { A: '1' } }, { mode })).join('\n')).toContain(`Input "tenant-env" does not apply to mode "${mode}"`)
    }
  })
})

describe('secrets', () => {
  const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACBa\n-----END OPENSSH PRIVATE KEY-----'
  const masked = () => core.setSecret.mock.calls.map(([secret]) => secret)

  it('masks the SSH key, each of its lines, the passphrase and the GitHub token', () => {
    read({ 'ssh-private-key': KEY, 'ssh-passphrase': 'correct horse', 'github-token': 'ghs_0123456789abcdef' })
    expect(masked()).toEqual(
      expect.arrayContaining([
        KEY,
        '-----BEGIN OPENSSH PRIVATE KEY-----',
        'b3BlbnNzaC1rZXktdjEAAAAA',
        'QyNTUxOQAAACBa',
        '-----END OPENSSH PRIVATE KEY-----',
        'correct horse',
        'ghs_0123456789abcdef'
      ])
    )
  })

  it('masks the key and the passphrase before it reports invalid inputs', () => {
    expect(problems({ 'ssh-private-key': KEY, 'ssh-passphrase': 'correct horse', mode: 'rollout' })).toHaveLength(1)
    expect(masked()).toEqual(expect.arrayContaining([KEY, 'correct horse']))
  })

  it('masks nothing that was not given', () => {
    read({ 'dry-run': 'true' })
    expect(core.setSecret).not.toHaveBeenCalled()
  })
})

describe('image', () => {
  it('refuses a reference Docker would refuse, saying why', () => {
    expect(problems({ 'ssh-private-key': 'k', image: 'ghcr.io/Acme/openclaw:1.2' })).toEqual([expect.stringMatching(/^Input "image" is "ghcr.io\/Acme\/openclaw:1.2", which Docker would refuse: .*must be lower-case/)])
    expect(problems({ 'ssh-private-key': 'k', image: 'ghcr.io/acme/openclaw:-1' })).toEqual([expect.stringMatching(/which Docker would refuse: expected \[registry\/\]repository/)])
    expect(read({ 'ssh-private-key': 'k', image: '10.200.0.1:5000/openclaw@sha256:' + 'a'.repeat(64) }).image).toMatch(/^10\.200/)
  })
})

describe('registry login', () => {
  const masked = () => core.setSecret.mock.calls.map(([secret]) => secret)
  const base = { 'ssh-private-key': 'k', 'registry-username': 'ci-bot', 'registry-password': 'ghp_0123456789abcdefghij' }

  it('is off without credentials', () => {
    expect(read({ 'ssh-private-key': 'k' })).toMatchObject({ registryCredentials: undefined, jumpPrivateKey: '' })
  })

  it('reads the credentials, masks the password before anything else, and never shows it', () => {
    expect(read({ ...base, registry: 'ghcr.io' }).registryCredentials).toEqual({ registry: 'ghcr.io', username: 'ci-bot', password: 'ghp_0123456789abcdefghij' })
    expect(masked()).toContain('ghp_0123456789abcdefghij')
    jest.clearAllMocks()
    const found = problems({ ...base, registry: 'https://ghcr.io/v2/', mode: 'rollout' })
    expect(masked()).toContain('ghp_0123456789abcdefghij')
    expect(found.join('\n')).not.toContain('ghp_')
  })

  it('needs both a username and a password, and a registry only with them', () => {
    expect(problems({ 'ssh-private-key': 'k', 'registry-password': 'p' })).toEqual([expect.stringMatching(/^Input "registry-password" is set but "registry-username" is empty/)])
    expect(problems({ 'ssh-private-key': 'k', 'registry-username': 'u' })).toEqual([expect.stringMatching(/^Input "registry-username" is set but "registry-password" is empty/)])
    expect(problems({ 'ssh-private-key': 'k', registry: 'ghcr.io' })).toEqual([expect.stringMatching(/^Input "registry" only applies together with "registry-username" and "registry-password"/)])
    expect(problems({ ...base, 'registry-username': 'ci bot' })).toEqual([expect.stringMatching(/^Input "registry-username" is "ci bot"; allowed: a user name without spaces/)])
  })

  it('takes a registry host as Docker names it, and says what to write for a URL', () => {
    for (const registry of ['ghcr.io', 'registry.example.com:5000', '10.200.0.1:5000', 'docker.io', 'localhost:5000']) expect(read({ ...base, registry }).registryCredentials?.registry).toBe(registry)
    expect(problems({ ...base, registry: 'https://ghcr.io/v2/' })).toEqual([expect.stringMatching(/^Input "registry" is "https:\/\/ghcr.io\/v2\/"; allowed: a registry host .*: here ghcr.io\.$/)])
  })

  it('logs in to the image\'s own registry unless "registry" names one', () => {
    const settings = read(base)
    expect(registryLoginFor(settings, 'ghcr.io/acme/openclaw:1.2')).toEqual({ registry: 'ghcr.io', username: 'ci-bot', password: 'ghp_0123456789abcdefghij' })
    expect(registryLoginFor(settings, '10.200.0.1:5000/openclaw:prd')?.registry).toBe('10.200.0.1:5000')
    expect(registryLoginFor(settings, 'acme/openclaw:prd')?.registry).toBe('docker.io')
    expect(registryLoginFor(read({ ...base, registry: 'mirror.example.com' }), 'ghcr.io/acme/openclaw:1.2')?.registry).toBe('mirror.example.com')
    expect(registryLoginFor(read({ 'ssh-private-key': 'k' }), 'ghcr.io/acme/openclaw:1.2')).toBeUndefined()
    // a reference read from a server's .env that Docker would not pull: no guess at a registry
    expect(() => registryLoginFor(settings, 'ghcr.io/Acme/x')).toThrow(/cannot tell which registry "ghcr.io\/Acme\/x" is on.*Set the input "registry"/)
  })

  it('masks jump-private-key like the SSH key', () => {
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----'
    expect(read({ 'ssh-private-key': 'k', 'jump-private-key': key }).jumpPrivateKey).toBe(key)
    expect(masked()).toEqual(expect.arrayContaining([key, 'b3BlbnNzaC1rZXktdjEAAAAA']))
  })
})
