import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { AnySchemaObject, ErrorObject, ValidateFunction } from 'ajv'
import * as validators from './registry-validator.generated.js'
// Imported, not read at run time: ncc bundles it into dist/, so the action needs no file beside it.
import schema from '../../servers.schema.json' with { type: 'json' }
import { formatProblems, UserError } from '../errors.js'
import { parseJsonText, JsonSyntaxError, type JsonPath, type JsonText } from './json-text.js'
import { closestMatch } from './suggest.js'
import { SERVER_DEFAULTS, type JumpHost, type Registry, type Server } from './types.js'

export type { Registry } from './types.js'

/** One thing wrong with the registry, located precisely enough to fix it without reading code. */
export interface RegistryProblem {
  file: string
  /** JSON path of the offending value, e.g. `servers[3].port` or `defaults.user`; '' for the whole file. */
  path: string
  /** Where in the file (1-based), when the file could be parsed that far. */
  line?: number
  column?: number
  /** What was found and what is allowed; starts with the path when there is one. */
  message: string
}

// Enough to see every kind of mistake; a generated file with thousands would drown the log.
const MAX_LISTED_PROBLEMS = 100

/** The registry cannot be used; `details` (and `problems`) hold every problem found, in file order. */
export class RegistryError extends UserError {
  constructor(
    readonly file: string,
    readonly details: RegistryProblem[],
    heading = `The server registry ${file} is not valid`
  ) {
    const problems = details.map(formatRegistryProblem)
    const listed = problems.slice(0, MAX_LISTED_PROBLEMS)
    super(formatProblems(problems.length > listed.length ? `${heading}; the first ${listed.length} of ${problems.length} problems follow` : heading, listed), problems)
    this.name = 'RegistryError'
  }
}

export function formatRegistryProblem(problem: RegistryProblem): string {
  const where = problem.line === undefined ? problem.file : `${problem.file}:${problem.line}:${problem.column}`
  return `${where}: ${problem.message}`
}

// The registry's objects are the top level, defaults, the servers and their labels: at most 3 deep.
// Any deeper object lies inside a value the schema rejects as a whole (a label that must be text, an
// unknown field), so a key repeated in it needs no fix of its own, and following them cost a 24 KB
// file nested 2,000 deep 3 seconds (and one nested 8,000 deep more memory than a runner has).
const DUPLICATE_KEY_DEPTH = 3

/** Fields of a server in the file, as the schema names them. */
export type ServerField = keyof typeof schema.$defs.server.properties

/**
 * Reads, checks and resolves the registry at `file` (relative to the working directory, which is
 * the repository on a runner). Throws one RegistryError listing every problem.
 */
export function loadRegistry(file: string): Registry {
  const text = readRegistryText(file)
  let json: JsonText
  try {
    json = parseJsonText(text, { duplicateKeyDepth: DUPLICATE_KEY_DEPTH })
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error
    // Shown as is (it is one line); control characters would only garble the log. A long line is
    // cut to the stretch around the mistake.
    const from = Math.max(0, error.position.column - 80)
    const near = [...error.lineText.slice(from, from + 120)]
      .map(c => (c < ' ' || c === '\u007f' ? ' ' : c))
      .join('')
      .trim()
    throw new RegistryError(file, [
      {
        file,
        path: '',
        ...error.position,
        message: `invalid JSON: ${error.reason}.${near ? ` The line reads: ${from > 0 ? '…' : ''}${near}` : ''}`
      }
    ])
  }

  const problems = [...schemaProblems(file, json), ...duplicateKeyProblems(file, json), ...crossCheckProblems(file, json)]
  if (problems.length) throw new RegistryError(file, orderProblems(problems))
  return { file, servers: resolveServers(json.value as RegistryDocument) }
}

/**
 * Checks one server field the way the registry does (schema pattern plus the checks the schema
 * cannot express). Returns what is allowed when `value` is not, otherwise undefined.
 */
export function checkServerField(field: ServerField, value: unknown): string | undefined {
  const validate = fieldValidator(field)
  if (!validate) throw new Error(`servers.schema.json has no definition for "${field}"`)
  const extra = EXTRA_CHECKS[field]
  if (validate(value) && (!extra || typeof value !== 'string' || extra(value))) return undefined
  return allowedText(field)
}

// ---------------------------------------------------------------------------------------------
// Reading the file

// A registry of thousands of servers is well under a megabyte; anything far bigger is a mistake.
const MAX_FILE_BYTES = 5 * 1024 * 1024

function readRegistryText(file: string): string {
  const fail = (message: string): never => {
    throw new RegistryError(file, [{ file, path: '', message }], `The server registry ${file} cannot be read`)
  }
  const absolute = path.resolve(file)
  let stat: fs.Stats
  try {
    stat = fs.statSync(absolute)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return fail(describeMissingFile(file, absolute))
    return fail(`the file cannot be read (${code ?? String(error)}); check that the runner's user can read ${absolute}.`)
  }
  if (stat.isDirectory()) {
    const jsonFiles = listJsonFiles(absolute)
    return fail(
      `this is a folder, not a file. Set the input "servers-file" to the registry file itself` +
        (jsonFiles.length ? `; this folder holds ${jsonFiles.map(f => path.join(file, f)).join(', ')}.` : ', e.g. .github/servers/production.json.')
    )
  }
  if (!stat.isFile()) return fail('this is not a regular file; set the input "servers-file" to a JSON file such as .github/servers/production.json.')
  if (stat.size > MAX_FILE_BYTES) return fail(`the file is ${stat.size} bytes; a server registry is a small JSON file (at most ${MAX_FILE_BYTES} bytes). Is "servers-file" pointing at the right file?`)

  let bytes = fs.readFileSync(absolute)
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return fail('the file is saved as UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8.')
  }
  // A UTF-8 byte order mark is accepted: some Windows editors add one, and it carries no meaning.
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    const lenient = bytes.toString('utf8')
    const line = lenient.slice(0, lenient.indexOf('\uFFFD')).split('\n').length
    return fail(`the file is not UTF-8 text (the first bad byte is on line ${line}); save it as UTF-8.`)
  }
  if (!text.trim()) {
    return fail('the file is empty. It must hold a JSON object such as {"servers": [{"name": "acme-1", "host": "acme-1.example.com", "tenant": "acme"}]}; see docs/examples/production.json.')
  }
  return text
}

function describeMissingFile(file: string, absolute: string): string {
  const folder = path.dirname(absolute)
  const siblings = listJsonFiles(folder)
  const similar = closestMatch(path.basename(absolute), siblings)
  let where: string
  if (similar) where = ` Did you mean ${path.join(path.dirname(file), similar)}?`
  else if (siblings.length) where = ` That folder holds ${siblings.join(', ')}.`
  else if (!fs.existsSync(folder)) where = ` The folder ${folder} does not exist either: was the repository checked out (actions/checkout) before this step?`
  else where = ''
  return (
    `file not found (looked for ${absolute}).${where} Commit the registry at that path, set the input "servers-file" ` +
    'to where it is (relative to the repository root), or set the input "host" to deploy to one server without a registry.'
  )
}

function listJsonFiles(folder: string): string[] {
  try {
    return fs
      .readdirSync(folder)
      .filter(name => name.endsWith('.json'))
      .sort()
      .slice(0, 20)
  } catch {
    return []
  }
}

// ---------------------------------------------------------------------------------------------
// Schema validation

// Compiled at build time (scripts/dev/gen-registry-validator.mjs): compiling the schema at start-up
// cost each run about 0.15 s of CPU.
const validateDocument = validators.document
const fieldValidator = (field: ServerField): ValidateFunction | undefined => (validators as Record<string, ValidateFunction>)[field]

const EXTRA_CHECKS: Partial<Record<ServerField, (value: string) => boolean>> = {
  // The pattern admits the shape of an address; net.isIP knows which addresses exist.
  host: host => (host.includes(':') ? net.isIPv6(host) : /^[0-9.]+$/.test(host) ? net.isIPv4(host) : true),
  healthUrl: url => URL.canParse(url)
}

/** The schema node `#/$defs/...` a `$ref` points to, or the node itself. */
function resolveRef(node: AnySchemaObject | undefined): AnySchemaObject | undefined {
  const ref = node?.$ref
  if (typeof ref !== 'string' || !ref.startsWith('#/$defs/')) return node
  const target = (schema.$defs as Record<string, AnySchemaObject>)[ref.slice('#/$defs/'.length)]
  return target ? { ...resolveRef(target), ...node, $ref: undefined } : node
}

function allowedOf(node: AnySchemaObject | undefined): string | undefined {
  const resolved = resolveRef(node)
  return typeof resolved?.['x-allowed'] === 'string' ? resolved['x-allowed'] : undefined
}

function allowedText(field: ServerField): string {
  return allowedOf(schema.$defs.server.properties[field]) ?? field
}

const FIELD_ALIASES: Record<string, string> = {
  hostname: 'host',
  address: 'host',
  ip: 'host',
  server: 'host',
  sshhost: 'host',
  sshport: 'port',
  username: 'user',
  sshuser: 'user',
  login: 'user',
  directory: 'path',
  dir: 'path',
  folder: 'path',
  deploymentpath: 'path',
  health: 'healthUrl',
  healthcheck: 'healthUrl',
  healthcheckurl: 'healthUrl',
  image: 'imageVariable',
  fingerprint: 'hostKey',
  hostfingerprint: 'hostKey',
  tags: 'labels',
  service: 'services',
  customer: 'tenant',
  bastion: 'jump',
  proxyjump: 'jump',
  jumphost: 'jump',
  via: 'jump'
}

function schemaProblems(file: string, json: JsonText): RegistryProblem[] {
  if (validateDocument(json.value)) return []
  const problems: RegistryProblem[] = []
  const reported = new Set<string>()
  const add = (at: JsonPath, message: string): void => {
    const where = formatJsonPath(at)
    // One problem per value: a host that is both too long and badly formed needs one fix.
    if (reported.has(where)) return
    reported.add(where)
    problems.push({ file, path: where, ...json.positionOf(at), message: `${where || 'The file'} ${message}` })
  }
  for (const error of validateDocument.errors ?? []) {
    // Reported by the propertyNames error itself, which knows the offending key.
    if (error.schemaPath.includes('/propertyNames/')) continue
    const at = parseJsonPointer(error.instancePath, json.value)
    const parent = error.parentSchema as AnySchemaObject | undefined
    switch (error.keyword) {
      case 'additionalProperties': {
        const field = String(error.params.additionalProperty)
        add([...at, field], describeUnknownField(at, field, parent))
        break
      }
      case 'required': {
        const field = String(error.params.missingProperty)
        const allowed = allowedOf(parent?.properties?.[field])
        add([...at, field], `is missing; required${allowed ? `: ${allowed}` : ''}.`)
        break
      }
      case 'propertyNames': {
        const key = String(error.params.propertyName)
        add([...at, key], `is not a valid label key; allowed: ${allowedOf(parent?.propertyNames) ?? 'a safe label key'}.`)
        break
      }
      default:
        add(at, describeWrongValue(error, parent))
    }
  }
  return problems
}

function describeUnknownField(at: JsonPath, field: string, parent: AnySchemaObject | undefined): string {
  const known = Object.keys(parent?.properties ?? {})
  const inDefaults = at.length === 1 && at[0] === 'defaults'
  if (inDefaults && (field === 'name' || field === 'host')) {
    return `cannot be set in defaults, since every server needs its own ${field}: move it into each server. Allowed in defaults: ${known.join(', ')}.`
  }
  const where = at.length === 0 ? 'the top level of the registry' : at.at(-1) === 'jump' ? 'a jump host' : inDefaults ? 'defaults' : 'a server'
  if (field.toLowerCase() === 'disabled') return `is not a field of ${where}; to leave a server alone, set "enabled": false. Allowed: ${known.join(', ')}.`
  const alias = FIELD_ALIASES[field.toLowerCase().replace(/[-_\s]/g, '')]
  const suggestion = alias && known.includes(alias) ? alias : closestMatch(field, known)
  const hint = suggestion === 'imageVariable' && alias ? ' (the image itself comes from the action input "image")' : ''
  return `is not a field of ${where}.${suggestion ? ` Did you mean "${suggestion}"${hint}?` : ''} Allowed: ${known.join(', ')}.`
}

function describeWrongValue(error: ErrorObject, parent: AnySchemaObject | undefined): string {
  const allowed = allowedOf(parent) ?? error.message ?? 'see servers.schema.json'
  const value: unknown = error.data
  let found: string
  if (error.keyword === 'type') found = describeType(value)
  else if (error.keyword === 'uniqueItems' && Array.isArray(value)) {
    const { i, j } = error.params as { i: number; j: number }
    found = `lists ${describeValue(value[i])} twice (items ${Math.min(i, j)} and ${Math.max(i, j)})`
    return `${found}; allowed: ${allowed}.`
  } else if (error.keyword === 'maxLength' && typeof value === 'string') found = `is ${value.length} characters long (${describeValue(value)})`
  else found = `is ${describeValue(value)}`
  return `${found}; allowed: ${allowed}.`
}

function describeType(value: unknown): string {
  if (value === null) return 'is null'
  if (Array.isArray(value)) return `is a list (${describeValue(value)})`
  if (typeof value === 'string') return `is the text ${describeValue(value)}`
  if (typeof value === 'object') return 'is an object'
  return `is ${typeof value === 'number' ? 'the number' : 'the boolean'} ${String(value)}`
}

/** A value as it would appear in the file, cut short; JSON escapes keep newlines and control characters visible. */
function describeValue(value: unknown, depth = 0): string {
  if (Array.isArray(value)) {
    if (!value.length) return 'an empty list []'
    // Only the first 80 characters are shown and every level of nesting adds one, so a list nested
    // thousands deep or thousands long is described from its start alone: same text, bounded work,
    // and no recursion deep enough to overflow the stack.
    if (depth > 80) return '…'
    let items = ''
    for (const item of value) {
      if (items.length > 80) break
      items += (items ? ', ' : '') + describeValue(item, depth + 1)
    }
    return `[${clip(items, 80)}]`
  }
  if (value !== null && typeof value === 'object') return 'an object'
  return typeof value === 'string' ? JSON.stringify(clip(value, 80)) : String(value)
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}

// ---------------------------------------------------------------------------------------------
// Checks the schema cannot express

function duplicateKeyProblems(file: string, json: JsonText): RegistryProblem[] {
  return json.duplicateKeys.map(d => ({
    file,
    path: formatJsonPath(d.path),
    ...d.second,
    message: `${formatJsonPath(d.path)} appears twice in the same object (lines ${d.first.line} and ${d.second.line}); JSON would silently keep only the last. Keep one.`
  }))
}

type Entry = Record<string, unknown>
const isEntry = (value: unknown): value is Entry => value !== null && typeof value === 'object' && !Array.isArray(value)

function crossCheckProblems(file: string, json: JsonText): RegistryProblem[] {
  const problems: RegistryProblem[] = []
  const add = (at: JsonPath, message: string): void => {
    problems.push({ file, path: formatJsonPath(at), ...json.positionOf(at), message: `${formatJsonPath(at)} ${message}` })
  }
  const document = json.value
  if (!isEntry(document) || !Array.isArray(document.servers)) return problems
  const defaults = isEntry(document.defaults) ? document.defaults : {}
  const servers = document.servers

  const checkFields = (at: JsonPath, entry: Entry): void => {
    for (const [field, extra] of Object.entries(EXTRA_CHECKS) as Array<[ServerField, (value: string) => boolean]>) {
      const value = entry[field]
      // Only values the schema accepted: anything else already has its problem.
      if (typeof value === 'string' && fieldValidator(field)?.(value) && !extra(value)) {
        add([...at, field], `is ${describeValue(value)}; allowed: ${allowedText(field)}.`)
      }
    }
    // a jump host's host is held to the same checks as a server's
    if (isEntry(entry.jump)) checkFields([...at, 'jump'], entry.jump)
  }
  checkFields(['defaults'], defaults)

  const byName = new Map<string, number>()
  const byTarget = new Map<string, number>()
  servers.forEach((server, index) => {
    if (!isEntry(server)) return
    const at = ['servers', index]
    checkFields(at, server)

    if (server.tenant === undefined && defaults.tenant === undefined) {
      add([...at, 'tenant'], `is missing, and defaults sets no tenant; required: the server's tenant, on the server or in defaults: ${allowedOf(schema.$defs.tenant)}.`)
    }

    if (typeof server.name === 'string') {
      const first = byName.get(server.name)
      if (first === undefined) byName.set(server.name, index)
      else add([...at, 'name'], `is ${JSON.stringify(server.name)}, which servers[${first}] already uses; allowed: a name no other server has.`)
    }

    const host = server.host
    const port = server.port ?? defaults.port ?? SERVER_DEFAULTS.port
    const folder = server.path ?? defaults.path ?? SERVER_DEFAULTS.path
    // 10.0.0.5 behind one bastion and 10.0.0.5 behind another can be two machines
    const jump = server.jump === undefined ? defaults.jump : server.jump
    const route = isEntry(jump) ? `${String(jump.host).toLowerCase()}\u0000${String(jump.port ?? SERVER_DEFAULTS.port)}` : ''
    if (typeof host === 'string' && typeof port === 'number' && typeof folder === 'string') {
      // Host names are case-insensitive; two spellings of one machine are still one machine.
      const target = `${host.toLowerCase()}\u0000${port}\u0000${folder}\u0000${route}`
      const first = byTarget.get(target)
      if (first === undefined) byTarget.set(target, index)
      else {
        const firstName = (servers[first] as Entry).name
        add(
          at,
          `deploys to ${folder} on ${formatAddress(host, port)}${isEntry(jump) ? ` through ${formatAddress(String(jump.host), Number(jump.port ?? SERVER_DEFAULTS.port))}` : ''}, the same host, port and path as servers[${first}]` +
            `${typeof firstName === 'string' ? ` (${JSON.stringify(firstName)})` : ''}; allowed: each host+port+path once, ` +
            'since two entries would deploy over each other. Give one a different "path", or remove it.'
        )
      }
    }
  })
  return problems
}

/** In file order, so the list reads top to bottom like the file. */
function orderProblems(problems: RegistryProblem[]): RegistryProblem[] {
  return problems
    .map((problem, index) => ({ problem, index }))
    .sort((a, b) => (a.problem.line ?? 0) - (b.problem.line ?? 0) || (a.problem.column ?? 0) - (b.problem.column ?? 0) || a.index - b.index)
    .map(({ problem }) => problem)
}

// ---------------------------------------------------------------------------------------------
// Resolution

interface RegistryDocument {
  defaults?: ServerDocument
  servers: ServerDocument[]
}

interface ServerDocument {
  name?: string
  host?: string
  tenant?: string
  region?: string
  port?: number
  user?: string
  path?: string
  healthUrl?: string
  services?: string[]
  imageVariable?: string
  hostKey?: string | string[]
  enabled?: boolean
  labels?: Record<string, string>
  jump?: JumpDocument | null
}

interface JumpDocument {
  host: string
  port?: number
  user?: string
  hostKey?: string | string[]
}

const fingerprints = (hostKey: string | string[] | undefined): string[] => (typeof hostKey === 'string' ? [hostKey] : [...(hostKey ?? [])])

function resolveServers(document: RegistryDocument): Server[] {
  const defaults = document.defaults ?? {}
  return document.servers.map(own => {
    const entry: ServerDocument = { ...defaults, ...own, labels: { ...defaults.labels, ...own.labels } }
    const user = entry.user ?? SERVER_DEFAULTS.user
    // `"jump": null` in a server: reached directly, whatever defaults says
    const jump = entry.jump ? { host: entry.jump.host, port: entry.jump.port ?? SERVER_DEFAULTS.port, user: entry.jump.user ?? user, hostKeys: fingerprints(entry.jump.hostKey) } : undefined
    return {
      // Checked above: every server has a name and a host, and a tenant of its own or from defaults.
      name: entry.name as string,
      host: entry.host as string,
      tenant: entry.tenant as string,
      ...(entry.region === undefined ? {} : { region: entry.region }),
      port: entry.port ?? SERVER_DEFAULTS.port,
      user,
      path: entry.path ?? SERVER_DEFAULTS.path,
      healthUrl: entry.healthUrl ?? SERVER_DEFAULTS.healthUrl,
      services: [...(entry.services ?? [])],
      imageVariable: entry.imageVariable ?? SERVER_DEFAULTS.imageVariable,
      hostKeys: fingerprints(entry.hostKey),
      enabled: entry.enabled ?? true,
      labels: entry.labels ?? {},
      ...(jump ? { jump } : {})
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Paths and addresses, as people read them

/** `servers[3].port`, `defaults.user`, `servers[0].labels["odd key"]`; '' for the top level. */
export function formatJsonPath(at: JsonPath): string {
  let out = ''
  for (const segment of at) {
    if (typeof segment === 'number') out += `[${segment}]`
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) out += out ? `.${segment}` : segment
    else out += `[${JSON.stringify(segment)}]`
  }
  return out
}

/** Ajv's `/servers/3/port` as path segments; numbers only where the value really is a list. */
function parseJsonPointer(pointer: string, root: unknown): JsonPath {
  if (!pointer) return []
  const at: Array<string | number> = []
  let node = root
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    const segment = Array.isArray(node) ? Number(key) : key
    at.push(segment)
    node = isEntry(node) || Array.isArray(node) ? (node as Record<string | number, unknown>)[segment] : undefined
  }
  return at
}

/** `user@host:port` style address part: IPv6 needs brackets to keep its colons apart from the port. */
export function formatAddress(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** `ops@bastion.example:22`: how the plan, the summary, the log and errors name a jump host. */
export function describeJump(jump: JumpHost): string {
  return `${jump.user}@${formatAddress(jump.host, jump.port)}`
}

/** The SSH route to a server: `deploy@10.0.0.5:22`, or `deploy@10.0.0.5:22 via ops@bastion.example:22`. */
export function describeRoute(server: Pick<Server, 'user' | 'host' | 'port' | 'jump'>): string {
  return `${server.user}@${formatAddress(server.host, server.port)}${server.jump ? ` via ${describeJump(server.jump)}` : ''}`
}
