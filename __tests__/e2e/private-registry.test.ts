// A private image from a registry that needs a login, as a private GHCR package does: the rig's
// second registry (TLS with the rig's own CA, trusted by every server's dockerd; htpasswd). The
// action logs in on each server just before the pull, into a temporary Docker config that is gone
// afterwards; the password travels only on the SSH channel's stdin and shows nowhere.
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, envOf, healthOf, readFleet, resultsOf, statusOf, rig, runAction, server, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'
import { credentialsLeft as credentialsLeftOn, expectNoPassword as expectNoPasswordIn } from './registry-credentials.js'

type PrivateRegistry = Fleet['privateRegistry']
let fleet: Fleet
let registry: PrivateRegistry
let password: string
let registryFile: string

function act(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction({ 'servers-file': registryFile, ...actionKeyInputs(fleet), 'health-timeout': '8', ...inputs })
}

const expectNoPassword = (run: ActionRun) => expectNoPasswordIn(run, registry.username, password)
const credentialsLeft = (name: string) => credentialsLeftOn(fleet, name, registry.username, password)

beforeAll(async () => {
  fleet = readFleet()
  registry = fleet.privateRegistry
  password = readFileSync(registry.passwordFile, 'utf8')
  registryFile = writeRegistry(fleet, ['s1', 's2', 's3'])
  await rig('reset', 'all')
})

afterAll(async () => {
  await rig('registry', 'start')
  await rig('reset', 'all')
})

describe('a private image', () => {
  it("cannot be pulled without a login: failed with Docker's reason, nothing changed", async () => {
    const env = envOf(server(fleet, 's3'))
    const run = await act({ image: registry.image, servers: 's3' })
    expect(statusOf(run)).toEqual({ s3: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(/pull.*(no basic auth credentials|unauthorized)/)
    expect(envOf(server(fleet, 's3'))).toBe(env)
    expect(await healthOf('s3')).toBe('v1')
  })

  it('with wrong credentials: failed with "unauthorized", the server untouched, no credential left', async () => {
    const env = envOf(server(fleet, 's3'))
    const run = await act({ image: registry.image, servers: 's3', 'registry-username': registry.username, 'registry-password': 'not-the-password-0123' })
    expect(statusOf(run)).toEqual({ s3: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(/unauthorized/i)
    expect(envOf(server(fleet, 's3'))).toBe(env)
    expect(await healthOf('s3')).toBe('v1')
    expect(await credentialsLeft('s3')).toBe('')
    expect(run.stdout.replace(/^::add-mask::.*$/gm, '')).not.toContain('not-the-password-0123')
  })

  it('deploys with the right credentials (registry taken from the image), leaves no credential behind and shows the password nowhere', async () => {
    const run = await act({ image: registry.image, servers: 's1,s2', 'registry-username': registry.username, 'registry-password': password })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s1: 'deployed', s2: 'deployed' })
    for (const name of ['s1', 's2']) {
      expect(await healthOf(name)).toBe('private')
      expect(await credentialsLeft(name)).toBe('')
    }
    expectNoPassword(run)
  })

  it('rolls back with the registry stopped and no login: the kept image is enough', async () => {
    await rig('registry', 'stop')
    try {
      const run = await act({ mode: 'rollback', servers: 's1' })
      expect(statusOf(run)).toEqual({ s1: 'deployed' })
      expect(await healthOf('s1')).toBe('v1')
    } finally {
      await rig('registry', 'start')
    }
  })
})
