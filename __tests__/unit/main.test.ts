// The action's last-resort handlers: a throw nobody catches (from a library callback) is reported,
// and its message, which may quote a server, reaches neither an annotation nor the log as a command.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import type { ServerResult } from '../../src/deploy/result.js'
import type { Server } from '../../src/registry/types.js'
import * as core from '../__fixtures__/core.js'
import { RUNNER_ENV, SSH_KEY as KEY } from '../__fixtures__/runner-env.js'

/** What a server could get into an error's message (ssh2 quotes what a peer sent). */
const FORGED = 'peer said\r\n::error title=globex-1 (globex)::forged\n::stop-commands::x\u001b[2K'

/** What Node does with a throw nobody catches (in a callback of a library). */
const throwUncaught = (error: Error) => (process.emit as (event: string, ...args: unknown[]) => boolean)('uncaughtException', error, 'uncaughtException')

/** runFleet stands in for the servers: while it runs, a library callback throws; then every server deploys. */
const runFleet = jest.fn(async (servers: Server[]): Promise<ServerResult[]> => {
  throwUncaught(new Error(FORGED))
  return servers.map(server => ({ server, status: 'deployed', durationMs: 1, log: [] }))
})
// (the fixture has no ExitCode, which the handler sets)
jest.unstable_mockModule('@actions/core', () => ({ ...core, ExitCode: { Success: 0, Failure: 1 } }))
jest.unstable_mockModule('../../src/deploy/fleet.js', () => ({
  runFleet,
  skippedResult: (server: Server, reason: string): ServerResult => ({ server, status: 'skipped', durationMs: 0, error: reason, log: [] })
}))
const { run } = await import('../../src/main.js')
const { reportError, UserError } = await import('../../src/errors.js')

// eslint-disable-next-line no-control-regex
const LINE_BREAK_OR_CONTROL = /[\r\n\u001b]/
const infoLines = () => core.info.mock.calls.flatMap(args => String(args[0]).split('\n'))

/** The stack of `FORGED` is printed inside one stop-commands block, so none of its lines is a command. */
function expectStackQuoted(needle = '::error title=globex-1'): void {
  const lines = infoLines()
  const open = lines.findIndex(l => l.startsWith('::stop-commands::'))
  const at = lines.findIndex(l => l.includes(needle))
  expect(open).toBeGreaterThanOrEqual(0)
  expect(at).toBeGreaterThan(open)
  const close = lines.indexOf(`::${lines[open]!.slice('::stop-commands::'.length)}::`)
  expect(close).toBeGreaterThan(at)
  expect(lines.slice(open, close).some(l => /^\s+at /.test(l))).toBe(true)
}

describe('reportError', () => {
  beforeEach(() => {
    jest.clearAllMocks()
  })

  it("shows a UserError's words as they are", () => {
    const annotate = jest.fn<(m: string) => void>()
    reportError('Could not', new UserError('registry (2 problems):\n  - a\n  - b'), annotate)
    expect(annotate.mock.calls).toEqual([['Could not: registry (2 problems):\n  - a\n  - b']])
    expect(core.info).not.toHaveBeenCalled()
  })

  it('puts any other message on one line, bounded, and its stack in the log inside a stop-commands block', () => {
    const annotate = jest.fn<(m: string) => void>()
    reportError('Internal error', new Error(`${FORGED} ${'y'.repeat(100_000)}`), annotate)
    const [[message]] = annotate.mock.calls as [[string]]
    expect(message).toMatch(/^Internal error: Error: peer said␍␊::error title=globex-1/)
    expect(message).not.toMatch(LINE_BREAK_OR_CONTROL)
    expect(message.length).toBeLessThan(2_100)
    // (of a huge stack only the end is kept: its frames, after the message the annotation has)
    expectStackQuoted('yyyyy')
    expect(infoLines().join('\n').length).toBeLessThan(40_000)
  })

  it('never throws, whatever was thrown', () => {
    const annotate = jest.fn<(m: string) => void>()
    const hostile = Object.create(null) as object
    const throwing = new Error('x')
    Object.defineProperty(throwing, 'message', {
      get() {
        throw new Error('no')
      }
    })
    for (const thrown of [hostile, throwing, Symbol('s'), undefined, `a\rb`]) expect(() => reportError('Internal error', thrown, annotate)).not.toThrow()
    expect(annotate.mock.calls.map(([m]) => m)).toEqual([
      'Internal error: an error that cannot be shown as text',
      'Internal error: an error that cannot be shown as text',
      'Internal error: Symbol(s)',
      'Internal error: undefined',
      'Internal error: a␍b'
    ])
  })
})

describe('the main step', () => {
  const dir = mkdtempSync(join(tmpdir(), 'openclaw-main-'))
  const registry = join(dir, 'servers.json')
  writeFileSync(registry, JSON.stringify({ servers: [{ name: 'a', host: 'a.test', tenant: 'acme' }] }))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const saved = { ...process.env }
  beforeEach(() => {
    jest.clearAllMocks()
    Object.assign(process.env, RUNNER_ENV)
    delete process.env.GITHUB_STEP_SUMMARY
    const inputs: Record<string, string> = { 'servers-file': registry, 'ssh-private-key': KEY, image: 'reg.test/openclaw:v2' }
    core.getInput.mockImplementation(name => inputs[name] ?? '')
  })
  afterEach(() => {
    for (const k of Object.keys(RUNNER_ENV)) delete process.env[k]
    Object.assign(process.env, saved)
    process.exitCode = undefined
  })

  it('reports an uncaught throw on one line, quotes its stack, fails the step, and still reports every server', async () => {
    await run()
    expect(runFleet).toHaveBeenCalledTimes(1)
    const internal = core.error.mock.calls.map(([m]) => String(m)).filter(m => m.startsWith('Internal error'))
    expect(internal).toHaveLength(1)
    expect(internal[0]).toMatch(/^Internal error, a bug in the action or a library \(the other servers go on; the step will fail\): Error: peer said␍␊::error title=globex-1/)
    expect(internal[0]).not.toMatch(LINE_BREAK_OR_CONTROL)
    expectStackQuoted()
    expect(process.exitCode).toBe(1)
    expect(core.setOutput).toHaveBeenCalledWith('deployed', 1)
  })
})
