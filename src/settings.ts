import * as core from '@actions/core'
import { formatProblems, UserError } from './errors.js'
import { InvalidImageReference, isRegistryHost, parseImageReference, registryOf } from './image-reference.js'
import { INPUT_DEFAULTS } from './input-defaults.generated.js'
import { JsonSyntaxError, parseJsonText } from './registry/json-text.js'
import type { RegistryLogin } from './remote/commands.js'
import { describeKey, publicKeyOf, UnusableKey, type PublicKey } from './remote/deploy-keys.js'

export type Mode = 'deploy' | 'rollback' | 'status' | 'rotate-token' | 'rotate-key'
export const MODES: readonly Mode[] = ['deploy', 'rollback', 'status', 'rotate-token', 'rotate-key']

/**
 * Variables to set in `.env` (input `tenant-env`): a tenant's name, or ALL_TENANTS, to variable
 * names and values. Values are secrets: masked as soon as they are read, and never printed.
 */
export type TenantEnv = Record<string, Record<string, string>>
/** The key of tenant-env whose variables every tenant gets (its own value for a name wins). */
export const ALL_TENANTS = '*'
/** The gateway's token in upstream's `.env`; `mode: rotate-token` renews it. */
export const GATEWAY_TOKEN = 'OPENCLAW_GATEWAY_TOKEN'
/**
 * Names tenant-env may set. Compose's .env reader takes more (letters and digits of any script, `.`,
 * `-`, `[`, `]`), but a compose file can only use `${NAME}` with these, so nothing else is useful.
 */
export const ENV_NAME_RULE = /^[A-Za-z_][A-Za-z0-9_]*$/
/** Upstream's setup makes 32 random bytes (64 hex digits); a given token must not be much weaker. */
const MIN_TOKEN_CHARS = 32
/** No .env value needs more; a bound keeps one mistake (a whole file pasted) from bloating `.env`. */
const MAX_VALUE_BYTES = 64 * 1024

/** The variables one tenant gets from tenant-env: those for every tenant, then its own (which win). */
export function tenantValues(tenantEnv: TenantEnv, tenant: string): Record<string, string> {
  return { ...tenantEnv[ALL_TENANTS], ...(tenant === ALL_TENANTS ? {} : tenantEnv[tenant]) }
}

/** Credentials to log in to a registry just before each pull (inputs `registry`, `registry-username`, `registry-password`). */
export interface RegistryCredentials {
  /** The registry to log in to; empty: the registry of the image each server pulls. */
  registry: string
  username: string
  /** Masked as soon as it is read; reaches a server only on the standard input of `docker login`. */
  password: string
}

/**
 * The login before pulling `image`, or undefined when no credentials were given. Without the input
 * `registry`, the registry is the image's own (for `image` empty, that of the reference the server's
 * `.env` names).
 */
export function registryLoginFor(settings: Pick<Settings, 'registryCredentials'>, image: string): RegistryLogin | undefined {
  const credentials = settings.registryCredentials
  if (!credentials) return undefined
  const registry = credentials.registry || registryOf(image)
  if (!registry) {
    throw new UserError(
      `cannot tell which registry ${JSON.stringify(image)} is on, to log in to it before the pull: it is not an image reference Docker accepts. Set the input "registry", or fix the image reference. Nothing was changed.`
    )
  }
  return { registry, username: credentials.username, password: credentials.password }
}

/** `mode: rotate-key` (inputs `new-ssh-private-key`, `new-ssh-passphrase`): the deploy key to move the servers to. */
export interface KeyRotation {
  /** Masked as soon as it is read; used only to log in with it (never written anywhere). */
  newPrivateKey: string
  newPassphrase: string
  /** The new key's public half, which goes into the servers' authorized_keys. */
  next: PublicKey
  /** The public half of `ssh-private-key`, whose lines are replaced; undefined only in a dry run without that input. */
  current?: PublicKey
}

/** Stop starting servers once this many have failed (count) or this share of the fleet (percent). */
export type FailureBudget = { kind: 'count'; value: number } | { kind: 'percent'; value: number }

/** A single server given by inputs instead of a registry file (the Phase 1 secrets). */
export interface SingleHost {
  host: string
  port?: number
  user?: string
  path?: string
}

export interface Settings {
  serversFile: string
  mode: Mode
  /** Image reference to deploy; empty: re-pull what the server's `.env` already names. */
  image: string
  sshPrivateKey: string
  sshPassphrase: string
  knownHosts: string
  strictHostKeyChecking: boolean
  filters: { tenants: string[]; regions: string[]; servers: string[] }
  maxParallel: number
  canary: number
  maxFailures?: FailureBudget
  /** All durations in seconds. */
  healthTimeout: number
  rollback: boolean
  prune: boolean
  connectTimeout: number
  commandTimeout: number
  lockTimeout: number
  dryRun: boolean
  singleHost?: SingleHost
  environment: string
  githubToken: string
  /** Input `tenant-env`; `{}` when not given. */
  tenantEnv: TenantEnv
  /** Inputs `registry`, `registry-username` and `registry-password`; undefined when none is given. */
  registryCredentials?: RegistryCredentials
  /** Input `jump-private-key`: the key for jump hosts; empty: `sshPrivateKey` is used for them too. */
  jumpPrivateKey: string
  /** Set in `mode: rotate-key` only. */
  keyRotation?: KeyRotation
}

/**
 * Reads one input the way the runner passes it (`INPUT_<NAME>`); trims surrounding whitespace. The
 * runner fills in action.yml's default for an input not given; an input given empty gets it here.
 */
export type InputReader = (name: string) => string
const readActionInput: InputReader = name => core.getInput(name)

/**
 * Turns the action's raw inputs into typed settings. The only place that reads inputs; every
 * problem names the input, what it got and what is allowed, and all problems are reported at once.
 */
export function readSettings(read: InputReader = readActionInput): Settings {
  const problems: string[] = []
  const p = new InputParser(read, problems)

  const sshPrivateKey = p.raw('ssh-private-key')
  const sshPassphrase = p.raw('ssh-passphrase')
  const jumpPrivateKey = p.raw('jump-private-key')
  const registryPassword = p.raw('registry-password')
  const newPrivateKey = p.raw('new-ssh-private-key')
  const newPassphrase = p.raw('new-ssh-passphrase')
  // Mask before anything else can print them, including our own error messages.
  for (const secret of [sshPrivateKey, sshPassphrase, jumpPrivateKey, registryPassword, newPrivateKey, newPassphrase]) if (secret) maskSecret(secret)
  const mode = p.choice('mode', MODES)
  const tenantEnv = p.tenantEnv('tenant-env')
  const dryRun = p.boolean('dry-run')
  if (!sshPrivateKey && !dryRun) {
    problems.push('Input "ssh-private-key" is required: pass the private key of the deploy user, e.g. ' + 'ssh-private-key: ${{ secrets.SSH_PRIVATE_KEY }} (only dry-run works without it).')
  }

  const host = p.raw('host')
  const singleHost: SingleHost | undefined = host
    ? {
        host,
        port: p.optionalInteger('port', 1, 65535),
        user: p.raw('user') || undefined,
        path: p.raw('deployment-path') || undefined
      }
    : undefined
  if (!host) {
    for (const name of ['port', 'user', 'deployment-path']) {
      if (p.raw(name)) problems.push(`Input "${name}" only applies together with "host"; set "host" or remove "${name}".`)
    }
  }

  const settings: Settings = {
    serversFile: p.raw('servers-file'),
    mode,
    image: p.raw('image'),
    sshPrivateKey,
    sshPassphrase,
    knownHosts: p.raw('known-hosts'),
    strictHostKeyChecking: p.boolean('strict-host-key-checking'),
    filters: { tenants: p.list('tenants'), regions: p.list('regions'), servers: p.list('servers') },
    maxParallel: p.integer('max-parallel', 1, 1000),
    canary: p.integer('canary', 0, 100000),
    maxFailures: p.failureBudget('max-failures'),
    healthTimeout: p.integer('health-timeout', 1, 3600),
    rollback: p.boolean('rollback'),
    prune: p.boolean('prune'),
    connectTimeout: p.integer('connect-timeout', 1, 600),
    commandTimeout: p.integer('command-timeout', 1, 86400),
    lockTimeout: p.integer('lock-timeout', 0, 86400),
    dryRun,
    singleHost,
    environment: p.raw('environment'),
    githubToken: p.raw('github-token'),
    tenantEnv,
    registryCredentials: p.registryCredentials(registryPassword),
    jumpPrivateKey,
    keyRotation: keyRotation(mode, { sshPrivateKey, sshPassphrase, newPrivateKey, newPassphrase }, problems)
  }
  if (settings.githubToken) maskSecret(settings.githubToken)
  if (settings.image && /[\s'"`$;&|<>\\]/.test(settings.image)) {
    problems.push(`Input "image" is "${settings.image}": an image reference has no spaces, quotes or shell characters ` + '(e.g. ghcr.io/acme/openclaw:1.4.2 or ghcr.io/acme/openclaw@sha256:…).')
  } else if (settings.image) {
    try {
      parseImageReference(settings.image)
    } catch (error) {
      if (!(error instanceof InvalidImageReference)) throw error
      problems.push(`Input "image" is "${settings.image}", which Docker would refuse: ${error.reason}.`)
    }
  }
  if (mode === 'rollback' && settings.image) {
    problems.push('Input "image" does not apply to mode "rollback": rollback restores the image recorded before the last deploy. Remove "image".')
  }
  if (mode === 'rotate-token' && settings.image) {
    problems.push('Input "image" does not apply to mode "rotate-token": the gateway restarts with the image it runs. Remove "image" (or deploy first).')
  }
  if (mode === 'rotate-key' && settings.image) {
    problems.push('Input "image" does not apply to mode "rotate-key": it changes only the deploy key in authorized_keys. Remove "image".')
  }
  if ((mode === 'rollback' || mode === 'status' || mode === 'rotate-key') && Object.keys(tenantEnv).length) {
    problems.push(`Input "tenant-env" does not apply to mode "${mode}": it sets variables in mode "deploy" or "rotate-token". Remove "tenant-env".`)
  }
  if (problems.length) throw new UserError(formatProblems('The action inputs are not valid', problems), problems)
  return settings
}

/**
 * `mode: rotate-key`'s keys, checked before any connection: the new key is a private key that can be
 * read (with its passphrase) and differs from the current one, whose public half must be known to
 * find its lines. Messages name the inputs, never a key's text.
 */
function keyRotation(mode: Mode, keys: { sshPrivateKey: string; sshPassphrase: string; newPrivateKey: string; newPassphrase: string }, problems: string[]): KeyRotation | undefined {
  if (mode !== 'rotate-key') {
    for (const name of ['new-ssh-private-key', 'new-ssh-passphrase'] as const) {
      if (name === 'new-ssh-private-key' ? keys.newPrivateKey : keys.newPassphrase) {
        problems.push(`Input "${name}" only applies to mode "rotate-key" (set mode: rotate-key to move the servers to that key), or remove it.`)
      }
    }
    return undefined
  }
  if (!keys.newPrivateKey) {
    problems.push(
      'Input "new-ssh-private-key" is required in mode "rotate-key": the private key to move the servers to, e.g. new-ssh-private-key: ${{ secrets.NEW_SSH_PRIVATE_KEY }} (make one with ssh-keygen -t ed25519 -N "" -f openclaw_deploy_new).'
    )
    return undefined
  }
  const read = (name: string, key: string, passphrase: string, passphraseInput: string): PublicKey | undefined => {
    try {
      return publicKeyOf(key, passphrase)
    } catch (error) {
      if (!(error instanceof UnusableKey)) throw error
      problems.push(`Input "${name}" cannot be used as an SSH private key: ${error.message} (give the whole private key, from -----BEGIN to -----END; is "${passphraseInput}" right?).`)
      return undefined
    }
  }
  const next = read('new-ssh-private-key', keys.newPrivateKey, keys.newPassphrase, 'new-ssh-passphrase')
  const current = keys.sshPrivateKey ? read('ssh-private-key', keys.sshPrivateKey, keys.sshPassphrase, 'ssh-passphrase') : undefined
  if (!next) return undefined
  if (current && current.blob === next.blob) {
    problems.push(`Input "new-ssh-private-key" is the same key as "ssh-private-key" (${describeKey(next)}): generate a new one with ssh-keygen and store it as the secret NEW_SSH_PRIVATE_KEY.`)
  }
  return { newPrivateKey: keys.newPrivateKey, newPassphrase: keys.newPassphrase, next, current }
}

function maskSecret(secret: string): void {
  core.setSecret(secret)
  // A multi-line key is printed line by line in some logs; mask each line too.
  for (const line of secret.split(/\r?\n/)) if (line.trim().length > 8) core.setSecret(line.trim())
}

/** A tenant-env value: the whole, and each line of it (a log may show one line of a multi-line value). */
function maskValue(value: string): void {
  if (value) core.setSecret(value)
  for (const line of value.split(/\r?\n|\r/)) if (line.trim() && line.trim() !== value) core.setSecret(line.trim())
}

/** `5` → `5th`, for "the 2nd name of acme". */
function ordinal(n: number): string {
  const tens = n % 100
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th')
  return `${n}${suffix}`
}

const TRUE_WORDS = ['true', 'True', 'TRUE', 'yes', 'on', '1']
const FALSE_WORDS = ['false', 'False', 'FALSE', 'no', 'off', '0']

class InputParser {
  constructor(
    private readonly read: InputReader,
    private readonly problems: string[]
  ) {}

  /** The input, or action.yml's default when it is empty. */
  raw(name: string): string {
    return this.read(name).trim() || (INPUT_DEFAULTS[name] ?? '')
  }

  /** An input that has a default in action.yml (a value is needed even when none is given). */
  private defaulted(name: string): string {
    const value = this.raw(name)
    if (!value) throw new Error(`input "${name}" has no default in action.yml (run npm run package to regenerate src/input-defaults.generated.ts)`)
    return value
  }

  choice<T extends string>(name: string, allowed: readonly T[]): T {
    const value = this.defaulted(name)
    if ((allowed as readonly string[]).includes(value)) return value as T
    this.problems.push(`Input "${name}" is "${value}"; allowed: ${allowed.join(', ')}.`)
    return allowed[0]!
  }

  boolean(name: string): boolean {
    const value = this.defaulted(name)
    if (TRUE_WORDS.includes(value)) return true
    if (FALSE_WORDS.includes(value)) return false
    this.problems.push(`Input "${name}" is "${value}"; allowed: true or false.`)
    return false
  }

  integer(name: string, min: number, max: number): number {
    this.defaulted(name)
    return this.optionalInteger(name, min, max) ?? min
  }

  optionalInteger(name: string, min: number, max: number): number | undefined {
    const value = this.raw(name)
    if (!value) return undefined
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(`Input "${name}" is "${value}"; allowed: a whole number from ${min} to ${max}.`)
      return undefined
    }
    return Number(value)
  }

  /** Comma- or newline-separated list; blanks dropped. */
  list(name: string): string[] {
    return this.raw(name)
      .split(/[,\n]/)
      .map(s => s.trim())
      .filter(Boolean)
  }

  /**
   * A JSON object of tenants (or "*") to objects of variable names and string values. Everything in
   * it is masked before anything can print; problems name tenants and variables, never a value, nor
   * a name that is not one (it could be a value put in the wrong place).
   */
  tenantEnv(name: string): TenantEnv {
    const text = this.raw(name)
    if (!text) return {}
    // the whole text (JSON that cannot be parsed is never printed, but may be quoted by a tool); not
    // line by line: its lines are mostly braces, which a mask would blank everywhere in the log
    core.setSecret(text)
    const where = `Input "${name}"`
    let parsed
    try {
      parsed = parseJsonText(text, { duplicateKeyDepth: 1 })
    } catch (error) {
      if (!(error instanceof JsonSyntaxError)) throw error
      // The reason could quote the text; only the place is shown.
      this.problems.push(`${where} is not valid JSON (line ${error.position.line}, column ${error.position.column}; the text is not shown, as it holds secrets). Check it with e.g. jq.`)
      return {}
    }
    const values: string[] = []
    collectValues(parsed.value, values)
    for (const value of values) maskValue(value)
    for (const duplicate of parsed.duplicateKeys) {
      const [tenant, variable] = duplicate.path as string[]
      if (variable === undefined || ENV_NAME_RULE.test(variable)) {
        this.problems.push(
          `${where}: ${variable === undefined ? `tenant ${JSON.stringify(tenant)}` : `${tenant}.${variable}`} is given twice (lines ${duplicate.first.line} and ${duplicate.second.line}); JSON would keep only the last.`
        )
      }
    }
    const shape =
      'a JSON object of tenant names (or "*" for every tenant) to objects of variable names and string values, e.g. {"*": {"OPENCLAW_SKIP_BROWSER_CONTROL_SERVER": "1"}, "acme": {"CLAUDE_AI_SESSION_KEY": "…"}}'
    if (!isObject(parsed.value)) {
      this.problems.push(`${where} must be ${shape}.`)
      return {}
    }
    const result: TenantEnv = {}
    for (const [tenant, variables] of Object.entries(parsed.value)) {
      if (!isObject(variables)) {
        this.problems.push(`${where}: ${JSON.stringify(tenant)} must be an object of variable names and string values; the whole input must be ${shape}.`)
        continue
      }
      const checked: Record<string, string> = {}
      Object.entries(variables).forEach(([variable, value], index) => {
        if (!ENV_NAME_RULE.test(variable)) {
          maskValue(variable)
          this.problems.push(
            `${where}: the ${ordinal(index + 1)} name of ${tenant} is not a variable name (letters, digits and _, not starting with a digit); it is not shown, in case a value was put there by mistake.`
          )
          return
        }
        const at = `${where}: ${tenant}.${variable}`
        if (typeof value !== 'string') {
          this.problems.push(`${at} must be a string${typeof value === 'number' || typeof value === 'boolean' ? ' (write it in double quotes)' : ''}.`)
        } else if (value.includes('\0') || LONE_SURROGATE.test(value)) {
          this.problems.push(`${at} holds a NUL character or a lone UTF-16 surrogate, which .env cannot hold.`)
        } else if (Buffer.byteLength(value) > MAX_VALUE_BYTES) {
          this.problems.push(`${at} is ${Buffer.byteLength(value)} bytes long; a value may have at most ${MAX_VALUE_BYTES}.`)
        } else if (variable === GATEWAY_TOKEN && tenant === ALL_TENANTS) {
          this.problems.push(`${at}: every tenant needs a gateway token of its own; give ${GATEWAY_TOKEN} per tenant, or leave it out in mode "rotate-token" to make new ones on the servers.`)
        } else if (variable === GATEWAY_TOKEN && value.length < MIN_TOKEN_CHARS) {
          this.problems.push(`${at} is ${value.length} characters long; a gateway token needs at least ${MIN_TOKEN_CHARS} (upstream makes 64 hex digits: openssl rand -hex 32).`)
        } else {
          checked[variable] = value
        }
      })
      result[tenant] = checked
    }
    return result
  }

  /**
   * `registry`, `registry-username` and `registry-password`: a username and a password together, or
   * neither; `registry` only with them. The password was masked by the caller before anything could
   * print; no message here shows it.
   */
  registryCredentials(password: string): RegistryCredentials | undefined {
    const registry = this.raw('registry')
    const username = this.raw('registry-username')
    if (!username && !password) {
      if (registry) this.problems.push('Input "registry" only applies together with "registry-username" and "registry-password" (the login before each pull); set them, or remove "registry".')
      return undefined
    }
    if (!username) this.problems.push('Input "registry-password" is set but "registry-username" is empty: docker login needs both (for GHCR e.g. registry-username: ${{ github.actor }}).')
    if (!password) this.problems.push('Input "registry-username" is set but "registry-password" is empty: docker login needs both (for GHCR e.g. registry-password: ${{ secrets.GITHUB_TOKEN }}).')
    if (username && !/^[^\s\p{Cc}]{1,255}$/u.test(username)) {
      this.problems.push(`Input "registry-username" is ${JSON.stringify(username.slice(0, 80))}; allowed: a user name without spaces or control characters, at most 255 characters.`)
    }
    if (password.includes('\0')) this.problems.push('Input "registry-password" holds a NUL character, which no password for docker login can hold (the value is not shown).')
    if (registry && !isRegistryHost(registry)) {
      const bare = registry.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '')
      this.problems.push(
        `Input "registry" is ${JSON.stringify(registry.slice(0, 120))}; allowed: a registry host as Docker names it, with an optional :port and no scheme or path (e.g. ghcr.io or registry.example.com:5000)` +
          (bare && bare !== registry && isRegistryHost(bare) ? `: here ${bare}.` : '.')
      )
    }
    return { registry, username, password }
  }

  failureBudget(name: string): FailureBudget | undefined {
    const value = this.raw(name)
    if (!value) return undefined
    const m = /^(\d+)(%?)$/.exec(value)
    if (!m || (m[2] && Number(m[1]) > 100)) {
      this.problems.push(`Input "${name}" is "${value}"; allowed: a number of servers (e.g. 2) or a percentage of the selected servers (e.g. 10%).`)
      return undefined
    }
    return m[2] ? { kind: 'percent', value: Number(m[1]) } : { kind: 'count', value: Number(m[1]) }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Every string value anywhere in a JSON value, also where the shape is wrong (not the keys: names are shown). */
function collectValues(value: unknown, into: string[]): void {
  if (typeof value === 'string') into.push(value)
  else if (typeof value === 'number' || typeof value === 'boolean') into.push(String(value))
  else if (Array.isArray(value)) for (const item of value) collectValues(item, into)
  else if (isObject(value)) for (const item of Object.values(value)) collectValues(item, into)
}

/** Half of a UTF-16 surrogate pair on its own: it has no UTF-8 form, so it cannot be written to .env. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
