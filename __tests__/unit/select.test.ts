import { describe, expect, it } from '@jest/globals'
import { UserError } from '../../src/errors.js'
import { selectServers } from '../../src/registry/select.js'
import type { Settings } from '../../src/settings.js'
import { fleet, makeServer, NO_FILTERS } from './fixtures/servers.js'

const names = (servers: Array<{ name: string }>): string[] => servers.map(s => s.name)

function selectionError(filters: Partial<Settings['filters']>, registry = fleet()): UserError {
  try {
    selectServers(registry, { ...NO_FILTERS, ...filters })
  } catch (error) {
    expect(error).toBeInstanceOf(UserError)
    return error as UserError
  }
  throw new Error('expected the filters to be rejected')
}

describe('selectServers', () => {
  it('without filters selects every enabled server in registry order and sets disabled ones aside', () => {
    const selection = selectServers(fleet(), NO_FILTERS)
    expect(names(selection.selected)).toEqual(['acme-eu-1', 'acme-us-1', 'globex-eu-1', 'initech-us-1', 'initech-lab'])
    expect(names(selection.disabled)).toEqual(['globex-eu-2'])
  })

  it.each([
    ['one tenant', { tenants: ['acme'] }, ['acme-eu-1', 'acme-us-1'], []],
    ['two tenants', { tenants: ['initech', 'acme'] }, ['acme-eu-1', 'acme-us-1', 'initech-us-1', 'initech-lab'], []],
    ['one region', { regions: ['eu-west'] }, ['acme-eu-1', 'globex-eu-1'], ['globex-eu-2']],
    ['tenant AND region', { tenants: ['acme', 'globex'], regions: ['eu-west'] }, ['acme-eu-1', 'globex-eu-1'], ['globex-eu-2']],
    ['servers by name', { servers: ['initech-lab', 'acme-us-1'] }, ['acme-us-1', 'initech-lab'], []],
    ['servers AND tenant', { tenants: ['acme'], servers: ['acme-us-1', 'globex-eu-1'] }, ['acme-us-1'], []],
    ['a disabled server named explicitly', { servers: ['globex-eu-2', 'globex-eu-1'] }, ['globex-eu-1'], ['globex-eu-2']],
    ['a region leaves out servers without one', { regions: ['us-east'] }, ['acme-us-1', 'initech-us-1'], []]
  ])('%s', (_title, filters, selected, disabled) => {
    const selection = selectServers(fleet(), { ...NO_FILTERS, ...filters })
    expect(names(selection.selected)).toEqual(selected)
    expect(names(selection.disabled)).toEqual(disabled)
  })

  it('rejects a tenant the registry does not have, with a suggestion and the known ones', () => {
    const error = selectionError({ tenants: ['acme', 'globx'] })
    expect(error.problems).toEqual(['Input "tenants" names "globx", but no server in .github/servers/production.json has that tenant. Did you mean "globex"? Known: acme, globex, initech.'])
    expect(error.message).toMatch(/^The server filters do not match the registry \(1 problem\):/)
  })

  it('reports every unknown filter value at once', () => {
    const error = selectionError({ tenants: ['ACME'], regions: ['eu-central'], servers: ['acme-eu1', 'zzz'] })
    expect(error.problems).toHaveLength(4)
    expect(error.problems[0]).toContain('Input "tenants" names "ACME"')
    expect(error.problems[0]).toContain('Did you mean "acme"?')
    expect(error.problems[1]).toContain('Input "regions" names "eu-central"')
    expect(error.problems[1]).toContain('Known: eu-west, us-east.')
    expect(error.problems[2]).toContain('Did you mean "acme-eu-1"?')
    expect(error.problems[3]).not.toContain('Did you mean')
  })

  it('rejects a region filter when no server has a region', () => {
    const registry = { file: 'r.json', servers: [makeServer('a', 'acme', undefined)] }
    expect(selectionError({ regions: ['eu-west'] }, registry).problems).toEqual(['Input "regions" names "eu-west", but no server in r.json has that region. No server in r.json has a region at all.'])
  })

  it('rejects filters that exist but never meet on one server', () => {
    const error = selectionError({ tenants: ['globex'], regions: ['us-east'] })
    expect(error.message).toBe(
      'No server matches tenants=globex and regions=us-east together; each value exists, but not on the same server. ' +
        'Matching servers per filter: tenants → globex-eu-1, globex-eu-2; regions → acme-us-1, initech-us-1. Change the filters so they overlap.'
    )
  })

  it('rejects a selection in which every server is disabled', () => {
    expect(selectionError({ servers: ['globex-eu-2'] }).message).toBe(
      'Every server matching servers=globex-eu-2 is disabled ("enabled": false): globex-eu-2. ' + 'Enable one in .github/servers/production.json or change the filters.'
    )
  })

  it('rejects a registry in which every server is disabled', () => {
    const registry = { file: 'r.json', servers: [makeServer('a', 'acme', undefined, { enabled: false })] }
    expect(selectionError({}, registry).message).toContain('Every server in r.json is disabled')
  })

  it('shows hostile filter values escaped', () => {
    expect(selectionError({ tenants: ['acme\n::error::owned'] }).problems[0]).toContain('"acme\\n::error::owned"')
  })
})

describe('selectServers with a large fleet', () => {
  it('keeps the list of known names short', () => {
    const registry = { file: 'r.json', servers: Array.from({ length: 50 }, (_, i) => makeServer(`gw-${i}`, 'acme', undefined)) }
    expect(selectionError({ servers: ['nothing-like-it'] }, registry).problems[0]).toMatch(/Known: gw-0, gw-1, .*, gw-19 and 30 more\.$/)
  })
})
