import { describe, expect, it } from '@jest/globals'
import { UserError } from '../../src/errors.js'
import { registryFromSingleHost, serverNameFor, SINGLE_HOST_SOURCE } from '../../src/registry/single-host.js'
import type { SingleHost } from '../../src/settings.js'
import { makeServer } from './fixtures/servers.js'

function problemsFor(single: SingleHost): string[] {
  try {
    registryFromSingleHost(single)
  } catch (error) {
    expect(error).toBeInstanceOf(UserError)
    return (error as UserError).problems
  }
  throw new Error('expected the inputs to be rejected')
}

describe('registryFromSingleHost', () => {
  it('makes one server with the registry defaults', () => {
    expect(registryFromSingleHost({ host: 'gw.example.com' })).toEqual({
      file: SINGLE_HOST_SOURCE,
      servers: [makeServer('gw.example.com', 'default', undefined, { host: 'gw.example.com' })]
    })
  })

  it('uses the port, user and deployment path given', () => {
    const [server] = registryFromSingleHost({ host: '2001:db8::7', port: 2222, user: 'openclaw', path: '/srv/openclaw' }).servers
    expect(server).toMatchObject({ name: '2001-db8--7', host: '2001:db8::7', port: 2222, user: 'openclaw', path: '/srv/openclaw' })
  })

  it.each([
    ['host', { host: 'gw.example.com; reboot' }, 'Input "host" is "gw.example.com; reboot"; allowed: a hostname'],
    ['host', { host: '-oProxyCommand=reboot' }, 'Input "host" is "-oProxyCommand=reboot"'],
    ['host', { host: '300.1.1.1' }, 'Input "host" is "300.1.1.1"'],
    ['user', { host: 'gw', user: 'root$(id)' }, 'Input "user" is "root$(id)"; allowed: a Linux user name'],
    ['deployment-path', { host: 'gw', path: 'openclaw-prd' }, 'Input "deployment-path" is "openclaw-prd"; allowed: an absolute folder'],
    ['deployment-path', { host: 'gw', path: '/home/deploy/../../etc' }, 'Input "deployment-path" is "/home/deploy/../../etc"'],
    ['deployment-path', { host: 'gw', path: '/home/deploy/x\nreboot' }, 'Input "deployment-path" is "/home/deploy/x\\nreboot"'],
    ['port', { host: 'gw', port: 0 }, 'Input "port" is 0; allowed: a whole number from 1 to 65535']
  ])('rejects an unsafe %s', (_input, single, message) => {
    expect(problemsFor(single as SingleHost)[0]).toContain(message)
  })

  it('reports every bad input at once', () => {
    const problems = problemsFor({ host: 'a b', user: 'A', path: 'x' })
    expect(problems.map(p => p.slice(0, p.indexOf(' is ')))).toEqual(['Input "host"', 'Input "user"', 'Input "deployment-path"'])
  })
})

describe('serverNameFor', () => {
  it.each([
    ['Gateway-1.Example.COM', 'gateway-1.example.com'],
    ['203.0.113.9', '203.0.113.9'],
    ['::1', '1'],
    ['fe80::1', 'fe80--1'],
    ['x'.repeat(100), 'x'.repeat(63)]
  ])('%s → %s', (host, name) => expect(serverNameFor(host)).toBe(name))
})
