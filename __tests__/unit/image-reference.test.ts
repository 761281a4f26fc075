import { describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { InvalidImageReference, isRegistryHost, parseImageReference, registryOf } from '../../src/image-reference.js'

describe('image references, as Docker reads them', () => {
  // examples of distribution/reference's normalize and reference tests, with the registry Docker picks
  it.each([
    ['ubuntu', 'docker.io', 'library/ubuntu'],
    ['ubuntu:24.04', 'docker.io', 'library/ubuntu'],
    ['docker/docker', 'docker.io', 'docker/docker'],
    ['docker.io/library/ubuntu', 'docker.io', 'library/ubuntu'],
    ['index.docker.io/library/ubuntu', 'docker.io', 'library/ubuntu'],
    ['docker.io/ubuntu', 'docker.io', 'library/ubuntu'],
    ['localhost/foo', 'localhost', 'foo'],
    ['localhost:5000/foo/bar:v1', 'localhost:5000', 'foo/bar'],
    ['127.0.0.1:5000/foo', '127.0.0.1:5000', 'foo'],
    ['10.200.0.1:5000/openclaw:good', '10.200.0.1:5000', 'openclaw'],
    ['[::1]:5000/foo', '[::1]:5000', 'foo'],
    ['[2001:db8::1]/foo', '[2001:db8::1]', 'foo'],
    ['ghcr.io/acme/openclaw:1.4.2', 'ghcr.io', 'acme/openclaw'],
    ['Foo/bar', 'Foo', 'bar'],
    ['foo_bar.com:8080', 'docker.io', 'library/foo_bar.com'],
    ['foo/foo_bar.com:8080', 'docker.io', 'foo/foo_bar.com'],
    ['xn--n3h.com/myimage:xn--n3h.com', 'xn--n3h.com', 'myimage'],
    ['registry.example.com:5000/a/b/c__d-e.f@sha256:' + 'a'.repeat(64), 'registry.example.com:5000', 'a/b/c__d-e.f'],
    ['test.com/repo:tag@sha256:' + 'f'.repeat(64), 'test.com', 'repo'],
    ['a/a/a/a/a', 'docker.io', 'a/a/a/a/a']
  ])('%s is on %s as %s', (reference, registry, repository) => {
    expect(parseImageReference(reference)).toMatchObject({ registry, repository })
    expect(registryOf(reference)).toBe(registry)
  })

  it.each([
    ['', /empty/],
    ['Uppercase:tag', /must be lower-case/],
    ['ghcr.io/Acme/openclaw', /must be lower-case/],
    ['a'.repeat(64), /image ID/],
    ['repo:tag@', /expected/],
    ['-foo', /expected/],
    ['foo-/bar', /expected/],
    ['foo/bar:-tag', /expected/],
    ['foo:' + 'x'.repeat(129), /expected/],
    ['foo@sha256:abc', /expected/],
    ['example.com:port/foo', /not a registry/],
    ['-bad.example/foo', /not a registry/],
    ['a/' + 'b'.repeat(255), /longer than Docker's 255/],
    ['foo//bar', /expected/],
    ['foo/bar/', /expected/]
  ])('refuses %j', (reference, why) => {
    expect(() => parseImageReference(reference)).toThrow(InvalidImageReference)
    expect(() => parseImageReference(reference)).toThrow(why)
    expect(registryOf(reference)).toBeUndefined()
  })

  // generators for each piece of the grammar, joined the way Docker's grammar joins them
  const alnum = fc.stringMatching(/^[a-z0-9]{1,6}$/)
  const separator = fc.constantFrom('.', '_', '__', '-', '--')
  const pathComponent = fc.tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 2 })).map(([a, rest]) => a + rest.map(([s, b]) => s + b).join(''))
  const repository = fc.array(pathComponent, { minLength: 1, maxLength: 3 }).map(parts => parts.join('/'))
  const label = fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?$/)
  const registry = fc.oneof(
    fc.tuple(label, fc.array(label, { minLength: 1, maxLength: 3 })).map(([a, rest]) => [a, ...rest].join('.')),
    fc.constant('localhost'),
    fc.ipV4(),
    fc.constantFrom('[::1]', '[2001:db8::10]')
  )
  const port = fc.option(
    fc.integer({ min: 1, max: 65535 }).map(n => `:${n}`),
    { nil: '' }
  )
  const tag = fc.option(
    fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/).map(t => `:${t}`),
    { nil: '' }
  )
  const digest = fc.option(
    fc.stringMatching(/^[0-9a-f]{64}$/).map(h => `@sha256:${h}`),
    { nil: '' }
  )

  it('finds the registry of every reference the grammar makes', () => {
    fc.assert(
      fc.property(registry, port, repository, tag, digest, (host, p, repo, t, d) => {
        const reference = `${host}${p}/${repo}${t}${d}`
        expect(parseImageReference(reference)).toEqual({
          registry: `${host}${p}`,
          repository: repo,
          ...(t ? { tag: t.slice(1) } : {}),
          ...(d ? { digest: d.slice(1) } : {})
        })
        expect(isRegistryHost(`${host}${p}`)).toBe(true)
      }),
      { numRuns: 500 }
    )
  })

  it('puts a reference whose first part is no registry on Docker Hub', () => {
    fc.assert(
      fc.property(repository, tag, (repo, t) => {
        fc.pre(!repo.split('/')[0]!.includes('.') && repo.split('/')[0] !== 'localhost')
        const parsed = parseImageReference(`${repo}${t}`)
        expect(parsed.registry).toBe('docker.io')
        expect(parsed.repository).toBe(repo.includes('/') ? repo : `library/${repo}`)
      }),
      { numRuns: 300 }
    )
  })

  it('knows a registry host from a URL', () => {
    for (const host of ['ghcr.io', 'registry.example.com:5000', 'localhost', '10.200.0.1:5000', '[::1]:5000', 'docker.io']) expect(isRegistryHost(host)).toBe(true)
    for (const host of ['https://ghcr.io', 'ghcr.io/acme', '', 'ghcr.io:', 'a b', '-x.io']) expect(isRegistryHost(host)).toBe(false)
  })
})
