import { beforeEach, describe, expect, it, jest } from '@jest/globals'
import * as core from '../__fixtures__/core.js'

jest.unstable_mockModule('@actions/core', () => core)
const { UserError } = await import('../../src/errors.js')
const { readSettings } = await import('../../src/settings.js')

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
    [{ mode: 'deploi' }, 'Input "mode" is "deploi"; allowed: deploy, rollback, status.'],
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
