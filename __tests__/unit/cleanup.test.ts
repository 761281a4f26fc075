// The post step of a cancelled run (src/cleanup.ts): which lock token it derives, which servers it
// asks, what it runs there (only the release of this run's lock), and that it never fails the job.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import type { RunContext } from '../../src/deploy/run-context.js'
import type { RemoteCommand } from '../../src/remote/commands.js'
import type { CommandResult, RemoteShell } from '../../src/remote/ssh.js'
import type { Server } from '../../src/registry/types.js'
import * as core from '../__fixtures__/core.js'
import { RUNNER_ENV, SSH_KEY as KEY } from '../__fixtures__/runner-env.js'
import { makeServer } from './fixtures/servers.js'

jest.unstable_mockModule('@actions/core', () => core)
const { ConnectError, ConnectionLost } = await import('../../src/remote/ssh.js')
const { createRunContext, lockToken } = await import('../../src/deploy/run-context.js')
const { releaseRunLocks } = await import('../../src/deploy/release.js')
const { runCleanup } = await import('../../src/cleanup.js')
const { readSettings } = await import('../../src/settings.js')

function server(name: string): Server {
  return makeServer(name, `t-${name}`, undefined, { host: `${name}.test`, path: `/srv/${name}` })
}

/** A server that answers the unlock step (and nothing else: any other step fails the test). */
class FakeServer implements RemoteShell {
  readonly ran: RemoteCommand[] = []
  closed = false
  constructor(
    readonly answer: Partial<CommandResult> | Error = { stdout: 'released=yes' },
    readonly stats?: { now: number; max: number }
  ) {}
  async run(command: RemoteCommand): Promise<CommandResult> {
    this.ran.push(command)
    if (command.step !== 'unlock') throw new Error(`the post step ran "${command.step}"; it may only release the lock`)
    if (this.stats) this.stats.max = Math.max(this.stats.max, ++this.stats.now)
    await new Promise(r => setTimeout(r, 5))
    if (this.stats) this.stats.now--
    if (this.answer instanceof Error) throw this.answer
    return { code: 0, stdout: '', stderr: '', ...this.answer }
  }
  close(): void {
    this.closed = true
  }
}

function context(fakes: Record<string, FakeServer | Error>, inputs: Record<string, string> = {}): Pick<RunContext, 'settings' | 'connect' | 'lockToken'> {
  return {
    settings: readSettings(name => ({ 'ssh-private-key': KEY, ...inputs })[name] ?? ''),
    lockToken: 'abc0123456789def',
    connect: async srv => {
      const f = fakes[srv.name]
      if (f instanceof Error) throw f
      if (!f) throw new Error(`no fake for ${srv.name}`)
      return f
    }
  }
}

describe('releasing the run’s locks on each server', () => {
  it("runs only the release of this run's lock, with its token, and closes the connection", async () => {
    const fake = new FakeServer()
    const [result] = await releaseRunLocks([server('a')], context({ a: fake }))
    expect(result).toMatchObject({ outcome: 'released' })
    expect(fake.ran.map(c => [c.step, c.args])).toEqual([['unlock', ['/srv/a/.openclaw-deploy', 'abc0123456789def']]])
    expect(fake.closed).toBe(true)
  })

  it("tells a lock released from one that was not this run's (another run's lock stays)", async () => {
    const results = await releaseRunLocks([server('a'), server('b')], context({ a: new FakeServer({ stdout: 'released=yes' }), b: new FakeServer({ stdout: 'released=not-ours' }) }))
    expect(results.map(r => [r.server.name, r.outcome])).toEqual([
      ['a', 'released'],
      ['b', 'not-held']
    ])
  })

  it('reports a server it cannot reach, refuses, or loses, and one whose unlock fails, with the reason', async () => {
    const results = await releaseRunLocks(
      [server('a'), server('b'), server('c'), server('d')],
      context({
        a: new ConnectError('cannot connect to a.test:22 after 3 attempts within 10s: connect ECONNREFUSED', 'network'),
        b: new ConnectError('refused before any command ran: b.test:22 presented an unknown key', 'host-key'),
        c: new FakeServer(new ConnectionLost('unlock: connection closed by the server or the network')),
        d: new FakeServer({ code: 3, stdout: 'error=another process kept the lock guard /srv/d/.openclaw-deploy/lock.guard busy for 10 s' })
      })
    )
    expect(results.map(r => [r.server.name, r.outcome, r.detail])).toEqual([
      ['a', 'unreachable', 'cannot connect to a.test:22 after 3 attempts within 10s: connect ECONNREFUSED'],
      ['b', 'failed', 'refused before any command ran: b.test:22 presented an unknown key'],
      ['c', 'unreachable', 'unlock: connection closed by the server or the network'],
      ['d', 'failed', 'unlock failed: another process kept the lock guard /srv/d/.openclaw-deploy/lock.guard busy for 10 s']
    ])
  })

  it('works on at most max-parallel servers at once', async () => {
    const stats = { now: 0, max: 0 }
    const names = ['a', 'b', 'c', 'd', 'e']
    const fakes = Object.fromEntries(names.map(n => [n, new FakeServer({ stdout: 'released=yes' }, stats)]))
    await releaseRunLocks(names.map(server), context(fakes, { 'max-parallel': '2' }))
    expect(stats.max).toBe(2)
  })
})

describe('the post step', () => {
  const dir = mkdtempSync(join(tmpdir(), 'openclaw-cleanup-'))
  const registry = join(dir, 'servers.json')
  writeFileSync(
    registry,
    JSON.stringify({
      servers: [
        { name: 'a', host: 'a.test', tenant: 'acme' },
        { name: 'b', host: 'b.test', tenant: 'acme' },
        { name: 'c', host: 'c.test', tenant: 'globex' },
        { name: 'off', host: 'off.test', tenant: 'acme', enabled: false }
      ]
    })
  )
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const saved = { ...process.env }
  let inputs: Record<string, string>
  beforeEach(() => {
    jest.clearAllMocks()
    Object.assign(process.env, RUNNER_ENV)
    inputs = { 'servers-file': registry, 'ssh-private-key': KEY, image: 'reg.test/openclaw:v2', 'connect-timeout': '20' }
    core.getInput.mockImplementation(name => inputs[name] ?? '')
  })
  afterEach(() => {
    for (const k of Object.keys(RUNNER_ENV)) delete process.env[k]
    Object.assign(process.env, saved)
  })

  /** runCleanup with the real run context (token, settings) and fake connections. */
  async function cleanup(fakes: Record<string, FakeServer | Error>) {
    const seen: RunContext[] = []
    await runCleanup((settings, signal) => {
      const ctx = { ...createRunContext(settings, signal), connect: context(fakes).connect }
      seen.push(ctx)
      return ctx
    })
    return seen
  }
  const logged = () => core.info.mock.calls.map(args => String(args[0])).join('\n')

  it("releases, with the main step's token, the locks on the servers the inputs select, in one log group", async () => {
    inputs.tenants = 'acme'
    const a = new FakeServer({ stdout: 'released=yes' })
    const b = new FakeServer({ stdout: 'released=not-ours' })
    const [ctx] = await cleanup({ a, b })
    expect(ctx!.lockToken).toBe(lockToken(RUNNER_ENV, KEY))
    expect(a.ran[0]!.args).toEqual(['/home/deploy/openclaw-prd/.openclaw-deploy', lockToken(RUNNER_ENV, KEY)])
    expect(b.ran).toHaveLength(1)
    // short timeouts: a cancelled job is not kept waiting
    expect(ctx!.settings.connectTimeout).toBe(10)
    expect(core.startGroup).toHaveBeenCalledTimes(1)
    expect(core.startGroup.mock.calls[0]![0]).toBe('Deploy locks of the cancelled run on 2 servers: 1 released, 1 not held')
    expect(logged()).toContain("a (acme): released this run's lock")
    expect(logged()).toContain('b (acme): no lock of this run')
    expect(core.endGroup).toHaveBeenCalledTimes(1)
    expect(core.warning).not.toHaveBeenCalled()
    expect(core.setFailed).not.toHaveBeenCalled()
  })

  it('warns about a server it cannot reach, without failing the job, and goes on with the others', async () => {
    const b = new FakeServer({ stdout: 'released=yes' })
    const c = new FakeServer({ stdout: 'released=yes' })
    await cleanup({ a: new ConnectError('cannot connect to a.test:22 after 3 attempts within 10s: connect ETIMEDOUT', 'network'), b, c })
    expect(b.ran).toHaveLength(1)
    expect(c.ran).toHaveLength(1)
    expect(core.warning).toHaveBeenCalledTimes(1)
    expect(core.warning.mock.calls[0]![0]).toMatch(/^could not reach the server to release this run's deploy lock .*remove \/home\/deploy\/openclaw-prd\/\.openclaw-deploy\/lock by hand/)
    expect(core.warning.mock.calls[0]![1]).toEqual({ title: 'a (acme)' })
    expect(logged()).toContain('a (acme): not reached: cannot connect to a.test:22')
    expect(core.setFailed).not.toHaveBeenCalled()
  })

  it("quotes the server's own words only inside a stop-commands block", async () => {
    await cleanup({ a: new FakeServer({ code: 3, stdout: 'error=::error::forged' }), b: new FakeServer(), c: new FakeServer() })
    const lines = core.info.mock.calls.map(args => String(args[0]))
    const open = lines.findIndex(l => l.startsWith('::stop-commands::'))
    const at = lines.findIndex(l => l.includes('::error::forged'))
    expect(open).toBeGreaterThanOrEqual(0)
    expect(at).toBeGreaterThan(open)
    expect(lines.slice(at).some(l => l === `::${lines[open]!.slice('::stop-commands::'.length)}::`)).toBe(true)
    expect(core.warning.mock.calls.map(args => String(args[0])).join('\n')).not.toContain('forged')
  })

  it('reports a throw nobody caught, or an unexpected error, on one line and its stack only inside a stop-commands block', async () => {
    const forged = 'peer said\r\n::error title=globex-1 (globex)::forged\n::stop-commands::x'
    const a = new FakeServer()
    a.run = async command => {
      ;(process.emit as (event: string, ...args: unknown[]) => boolean)('uncaughtException', new Error(forged), 'uncaughtException')
      return FakeServer.prototype.run.call(a, command)
    }
    await cleanup({ a, b: new FakeServer(), c: new FakeServer() })
    await runCleanup(() => {
      throw new TypeError(forged)
    })
    const warnings = core.warning.mock.calls.map(args => String(args[0]))
    expect(warnings).toEqual([
      expect.stringMatching(/^Internal error while releasing this run's deploy locks: Error: peer said␍␊::error title=globex-1/),
      expect.stringMatching(/^Could not release this run's deploy locks \(a lock left behind ends with its lease\): TypeError: peer said␍␊::error title=globex-1/)
    ])
    for (const w of warnings) expect(w).not.toMatch(/[\r\n]/)
    const lines = core.info.mock.calls.flatMap(args => String(args[0]).split('\n'))
    const quoted = lines.filter(l => l.includes('::error title=globex-1'))
    expect(quoted).toHaveLength(2)
    for (const line of quoted) {
      const open = lines.slice(0, lines.indexOf(line)).findLast(l => l.startsWith('::stop-commands::'))!
      expect(lines.slice(lines.indexOf(open), lines.indexOf(line)).some(l => l === `::${open.slice('::stop-commands::'.length)}::`)).toBe(false)
    }
  })

  it('does nothing in a dry run or in mode status', async () => {
    for (const mode of [{ 'dry-run': 'true' }, { mode: 'status', image: '' }]) {
      jest.clearAllMocks()
      Object.assign(inputs, mode)
      expect(await cleanup({})).toEqual([])
      expect(logged()).toMatch(/^No deploy lock to release: (a dry run|mode status) takes none\.$/)
    }
  })

  it('warns, and does not fail the job, when the inputs or the registry cannot be read', async () => {
    inputs['servers-file'] = join(dir, 'missing.json')
    expect(await cleanup({})).toEqual([])
    expect(core.warning).toHaveBeenCalledTimes(1)
    expect(core.warning.mock.calls[0]![0]).toMatch(/^Could not release this run's deploy locks \(a lock left behind ends with its lease\): .*missing\.json/)
    expect(core.setFailed).not.toHaveBeenCalled()
  })
})
