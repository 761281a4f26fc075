import { describe, expect, it } from '@jest/globals'
import { closestMatch, editDistance } from '../../src/registry/suggest.js'

const FIELDS = ['name', 'host', 'tenant', 'region', 'port', 'user', 'path', 'healthUrl', 'services', 'imageVariable', 'hostKey', 'enabled', 'labels']

describe('closestMatch', () => {
  it.each([
    ['healtUrl', 'healthUrl'],
    ['health_url', 'healthUrl'],
    ['HealthURL', 'healthUrl'],
    ['hostkey', 'hostKey'],
    ['host_keys', 'hostKey'],
    ['prot', 'port'],
    ['tennant', 'tenant'],
    ['servics', 'services'],
    ['lables', 'labels'],
    ['imageVar', 'imageVariable']
  ])('%s → %s', (word, match) => expect(closestMatch(word, FIELDS)).toBe(match))

  it.each(['color', 'x', '', 'a'.repeat(500)])('suggests nothing for %j', word => expect(closestMatch(word, FIELDS)).toBeUndefined())

  it('completes a unique prefix', () => {
    expect(closestMatch('eu', ['eu-west', 'us-east'])).toBe('eu-west')
    expect(closestMatch('eu', ['eu-west', 'eu-north'])).toBeUndefined()
  })
})

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['kitten', 'sitting', 3],
    ['prot', 'port', 1],
    ['port', 'port', 0]
  ])('%s ↔ %s = %d', (a, b, d) => expect(editDistance(a as string, b as string)).toBe(d))
})
