import * as core from '@actions/core'
import { UserError } from './errors.js'

export type Mode = 'deploy' | 'rollback' | 'status'
export const MODES: readonly Mode[] = ['deploy', 'rollback', 'status']

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
}

/** Reads one input the way the runner passes it (`INPUT_<NAME>`); trims surrounding whitespace. */
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
  // Mask before anything else can print them, including our own error messages.
  for (const secret of [sshPrivateKey, sshPassphrase]) if (secret) maskSecret(secret)
  const mode = p.choice('mode', MODES, 'deploy')
  const dryRun = p.boolean('dry-run', false)
  if (!sshPrivateKey && !dryRun) {
    problems.push(
      'Input "ssh-private-key" is required: pass the private key of the deploy user, e.g. ' +
        'ssh-private-key: ${{ secrets.SSH_PRIVATE_KEY }} (only dry-run works without it).'
    )
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
    serversFile: p.raw('servers-file') || '.github/servers/production.json',
    mode,
    image: p.raw('image'),
    sshPrivateKey,
    sshPassphrase,
    knownHosts: p.raw('known-hosts'),
    strictHostKeyChecking: p.boolean('strict-host-key-checking', true),
    filters: { tenants: p.list('tenants'), regions: p.list('regions'), servers: p.list('servers') },
    maxParallel: p.integer('max-parallel', 10, 1, 1000),
    canary: p.integer('canary', 0, 0, 100000),
    maxFailures: p.failureBudget('max-failures'),
    healthTimeout: p.integer('health-timeout', 60, 1, 3600),
    rollback: p.boolean('rollback', true),
    prune: p.boolean('prune', true),
    connectTimeout: p.integer('connect-timeout', 20, 1, 600),
    commandTimeout: p.integer('command-timeout', 600, 1, 86400),
    lockTimeout: p.integer('lock-timeout', 60, 0, 86400),
    dryRun,
    singleHost,
    environment: p.raw('environment'),
    githubToken: p.raw('github-token')
  }
  if (settings.githubToken) maskSecret(settings.githubToken)
  if (settings.image && /[\s'"`$;&|<>\\]/.test(settings.image)) {
    problems.push(
      `Input "image" is "${settings.image}": an image reference has no spaces, quotes or shell characters ` +
        '(e.g. ghcr.io/acme/openclaw:1.4.2 or ghcr.io/acme/openclaw@sha256:…).'
    )
  }
  if (mode === 'rollback' && settings.image) {
    problems.push('Input "image" does not apply to mode "rollback": rollback restores the image recorded before the last deploy. Remove "image".')
  }
  if (problems.length) throw new UserError(formatProblems('The action inputs are not valid', problems), problems)
  return settings
}

function maskSecret(secret: string): void {
  core.setSecret(secret)
  // A multi-line key is printed line by line in some logs; mask each line too.
  for (const line of secret.split(/\r?\n/)) if (line.trim().length > 8) core.setSecret(line.trim())
}

export function formatProblems(heading: string, problems: string[]): string {
  return `${heading} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` + problems.map(p => `  - ${p}`).join('\n')
}

const TRUE_WORDS = ['true', 'True', 'TRUE', 'yes', 'on', '1']
const FALSE_WORDS = ['false', 'False', 'FALSE', 'no', 'off', '0']

class InputParser {
  constructor(
    private readonly read: InputReader,
    private readonly problems: string[]
  ) {}

  raw(name: string): string {
    return this.read(name).trim()
  }

  choice<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name)
    if (!value) return fallback
    if ((allowed as readonly string[]).includes(value)) return value as T
    this.problems.push(`Input "${name}" is "${value}"; allowed: ${allowed.join(', ')}.`)
    return fallback
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name)
    if (!value) return fallback
    if (TRUE_WORDS.includes(value)) return true
    if (FALSE_WORDS.includes(value)) return false
    this.problems.push(`Input "${name}" is "${value}"; allowed: true or false.`)
    return fallback
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    return this.optionalInteger(name, min, max) ?? fallback
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
