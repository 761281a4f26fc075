import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it, jest } from '@jest/globals'
import fc from 'fast-check'
import type { RunContext } from '../../src/deploy/run-context.js'
import type { RemoteCommand } from '../../src/remote/commands.js'
import type { CommandResult, RemoteShell } from '../../src/remote/ssh.js'
import type { Server } from '../../src/registry/types.js'
import type { Settings } from '../../src/settings.js'
import * as core from '../__fixtures__/core.js'
import { makeServer } from './fixtures/servers.js'

// (reading settings masks the key: a workflow command on stdout with the real module)
jest.unstable_mockModule('@actions/core', () => core)
const { ConnectError, ConnectionLost } = await import('../../src/remote/ssh.js')
const { failuresAllowed, runFleet } = await import('../../src/deploy/fleet.js')
const { runServer } = await import('../../src/deploy/pipeline.js')
const { describeContainers } = await import('../../src/deploy/describe.js')
const { rollbackTag } = await import('../../src/deploy/rollback-tag.js')
const { NEW_TOKEN, partOutput } = await import('../../src/remote/commands.js')
const { annotate, logServer, renderSummary, setOutputs } = await import('../../src/report/report.js')
const { readSettings } = await import('../../src/settings.js')

/** Everything src/ handed to @actions/core (the fixture records it instead of printing), as text. */
const handedToCore = () => Object.values(core).flatMap(fn => (jest.isMockFunction(fn) ? fn.mock.calls.map(args => args.map(String).join(' ')) : []))

const OLD = 'reg.test/openclaw:v1'
const NEW = 'reg.test/openclaw:v2'

function server(name: string): Server {
  return makeServer(name, `t-${name}`, undefined, { host: `${name}.test`, path: `/srv/${name}` })
}

function settings(inputs: Record<string, string> = {}): Settings {
  const all: Record<string, string> = { 'ssh-private-key': 'KEY', image: NEW, ...inputs }
  return readSettings(name => all[name] ?? '')
}

type Reply = Partial<CommandResult> | typeof HANG | ((command: RemoteCommand) => Partial<CommandResult> | typeof HANG)
/** A step that runs until the run's signal ends it, as a real connection does (or fails the test after 3 s). */
const HANG = Symbol('hang')

/** Steps a FakeServer was asked for and had no reply to: each fails the test it ran in. */
const unexpectedSteps: string[] = []
afterEach(() => {
  expect({ 'steps without a reply': unexpectedSteps.splice(0) }).toEqual({ 'steps without a reply': [] })
})

/**
 * A server that answers each step by name (else DEFAULT_REPLIES; a step in neither fails the test);
 * records what ran. A sequence (several steps in one channel) is answered part by part, as the real
 * one runs: until the first failing part, or every part (`end`), each part's output between the
 * markers commands.ts prints; a part carries the lease and switch lock of its channel.
 */
class FakeServer implements RemoteShell {
  readonly ran: RemoteCommand[] = []
  /** One entry per channel: the steps it ran. */
  readonly channels: string[][] = []
  running = 0
  /** Called when a step starts hanging (e.g. to cancel the run right then). */
  onHang?: () => void
  constructor(
    readonly replies: Record<string, Reply> = {},
    readonly delayMs = 0,
    readonly stats?: { now: number; max: number }
  ) {}
  async run(command: RemoteCommand, timeout: number, signal?: AbortSignal): Promise<CommandResult> {
    if (command.parts) return this.sequence(command, timeout, signal)
    this.channels.push([command.step])
    return this.answer(command, signal)
  }
  private async sequence(command: RemoteCommand, _timeout: number, signal?: AbortSignal): Promise<CommandResult> {
    const untilEnd = command.until === 'end'
    const out = { code: 0, stdout: '', stderr: '' }
    this.channels.push([])
    for (const { command: part } of command.parts!) {
      this.channels.at(-1)!.push(part.step)
      const r = await this.answer({ ...part, lease: command.lease, exclusive: command.exclusive }, signal)
      const printed = partOutput(command, part.step, r.stdout, r.stderr, r.code)
      out.stdout += printed.stdout
      out.stderr += printed.stderr
      if (r.code !== 0 && out.code === 0) out.code = r.code
      if (r.code !== 0 && !untilEnd) break
    }
    return out
  }
  private async answer(command: RemoteCommand, signal?: AbortSignal): Promise<CommandResult> {
    this.ran.push(command)
    if (signal?.aborted) throw new ConnectionLost(`${command.step}: cancelled`)
    if (this.stats) this.stats.max = Math.max(this.stats.max, ++this.stats.now)
    await new Promise(r => setTimeout(r, this.delayMs))
    if (this.stats) this.stats.now--
    const reply = this.replies[command.step] ?? DEFAULT_REPLIES[command.step]
    if (reply === undefined) {
      // (the pipeline may turn the rejection into a failed server the test does not look at: afterEach fails it)
      unexpectedSteps.push(command.step)
      throw new Error(`FakeServer has no reply for the step "${command.step}": give the test one, or add a realistic one to DEFAULT_REPLIES`)
    }
    const r = typeof reply === 'function' ? reply(command) : reply
    if (r === HANG) {
      await new Promise((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`${command.step} hung: the step did not get the run's signal`)), 3000)
        signal?.addEventListener('abort', () => {
          clearTimeout(timer)
          reject(new ConnectionLost(`${command.step}: cancelled`))
        })
        this.onHang?.()
      })
    }
    return { code: 0, stdout: '', stderr: '', ...(r === HANG ? {} : r) }
  }
  close(): void {}
  steps(): string[] {
    return this.ran.map(c => c.step)
  }
}

/** Preflight's line for the gateway service: its image comes from OPENCLAW_IMAGE, it restarts. */
const GATEWAY = 'service=gateway|yes|unless-stopped\n'
/** The values a write-env step carries on stdin (NAME BASE64 SHA256 lines, then `end`); NEW_TOKEN for a token made there. */
function written(command: RemoteCommand): Record<string, string | typeof NEW_TOKEN> {
  const lines = command.stdin!.trim().split('\n')
  expect(lines.at(-1)).toBe('end')
  return Object.fromEntries(lines.slice(0, -1).map(l => [l.split(' ')[0], l.split(' ')[1]!.startsWith('!') ? NEW_TOKEN : Buffer.from(l.split(' ')[1]!, 'base64').toString()]))
}

/** write-env's answer when every value is in .env already: exit 0, or EXIT_CODE.unchanged when asked to stop there (its 4th argument). */
const UNCHANGED_ENV = (command: RemoteCommand) => ({ stdout: 'written=none', code: Number(command.args[3]) })

const PREFLIGHT = `compose=docker-compose.yml\n${GATEWAY}image_var=${OLD}\ncontainer=gateway|${OLD}|sha256:old|running`
/** What the status probe reads of the same project (its containers; no service list): the CLI exited 0, as upstream's does. */
const STATUS = `compose=docker-compose.yml\nimage_var=${OLD}\ncontainer=openclaw-cli|${OLD}|sha256:old|exited|false|0|0|no\ncontainer=gateway|${OLD}|sha256:old|running|false|0|0|unless-stopped`
const HEALTHY = 'health=ok\nhttp=200\ncontainers=gateway:running:0:0:unless-stopped:ok'

/** A health step that fails its first check (with `answer`) and passes every later one. */
function unhealthyOnce(answer = 'health=failed\nhttp=500\nerror=not healthy within 60s'): Reply {
  let checks = 0
  return () => (++checks === 1 ? { code: 5, stdout: answer } : { stdout: 'health=ok\nhttp=200' })
}

/**
 * What a server running OLD answers to every step of a deploy, a rollback and a status probe when
 * all goes well (the scripts' own success lines, see src/remote/commands.ts).
 */
const DEFAULT_REPLIES: Record<string, Reply> = {
  lock: { stdout: 'locked=yes' },
  preflight: { stdout: PREFLIGHT },
  inspect: { stdout: 'image_id=sha256:old' },
  pull: { stdout: 'image_id=sha256:new' },
  record: { stdout: 'recorded=yes' },
  // the names of the variables whose values changed (here: all that were sent)
  'write-env': command => ({ stdout: `written=${Object.keys(written(command)).join(' ')}` }),
  up: {},
  stop: { stdout: 'stopped=yes' },
  health: { stdout: HEALTHY },
  retag: {},
  'restore-env': { stdout: 'restored=yes' },
  unrecord: { stdout: 'restored=yes' },
  'read-rollback': { stdout: `image=${OLD}\nimage_id=sha256:old\ntag=openclaw-rollback:srv_a` },
  prune: { stdout: 'removed=1' },
  'forget-env': { stdout: 'forgotten=yes' },
  history: { stdout: 'appended=yes' },
  status: { stdout: `${STATUS}\nlast=\nholder=\n${HEALTHY}` },
  unlock: { stdout: 'released=yes' }
}

function context(s: Settings, fakes: Record<string, FakeServer | Error>, abort = new AbortController()): RunContext {
  return {
    settings: s,
    signal: abort.signal,
    lockHolder: 'test token=abc',
    lockToken: 'abc',
    runLabel: 'test',
    connect: async srv => {
      const f = fakes[srv.name]
      if (f instanceof Error) throw f
      if (!f) throw new Error(`no fake for ${srv.name}`)
      return f
    }
  }
}

describe('one server', () => {
  it('deploys: lock, preflight, pull, record, write .env, up, health, prune, history, unlock', async () => {
    const fake = new FakeServer()
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'record', 'write-env', 'up', 'health', 'prune', 'forget-env', 'history', 'unlock'])
    // only the variable's name and new value travel: .env is read and changed on the server
    expect(written(fake.ran.find(c => c.step === 'write-env')!)).toEqual({ OPENCLAW_IMAGE: NEW })
    expect(fake.ran.find(c => c.step === 'up')!.args).toEqual(['/srv/a', 'OPENCLAW_IMAGE', 'gateway'])
    expect(result).toMatchObject({ previousImage: OLD, deployedImage: NEW, previousImageId: 'sha256:old', deployedImageId: 'sha256:new', health: 'HTTP 200; gateway running' })
    // prune may only remove what this deployment noted, and keeps the new and the rollback image
    // (the record's last argument: this run's token, which owns the copy of the earlier record)
    expect(fake.ran.find(c => c.step === 'record')!.args.slice(-4)).toEqual([OLD, 'sha256:old', 'sha256:new', 'abc'])
    expect(fake.ran.find(c => c.step === 'prune')!.args).toEqual(['/srv/a/.openclaw-deploy', 'openclaw-rollback:srv_a', 'sha256:new', 'sha256:old'])
  })

  it('rolls back to the recorded image and the .env this run found when the new image is unhealthy', async () => {
    let healthChecks = 0
    const fake = new FakeServer({
      health: () => (++healthChecks === 1 ? { code: 5, stdout: 'health=failed\nhttp=500\nerror=not healthy within 60s' } : { stdout: 'health=ok\nhttp=200' })
    })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('rolled-back')
    expect(result.error).toMatch(/not healthy within 60s.*restored reg.test\/openclaw:v1/)
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'record', 'write-env', 'up', 'health', 'retag', 'restore-env', 'up', 'health', 'unrecord', 'history', 'unlock'])
    // the server puts back its own copy of the .env this run replaced (the run is named by its lock token)
    expect(fake.ran.find(c => c.step === 'restore-env')!.args).toEqual(['/srv/a', '/srv/a/.openclaw-deploy', 'abc'])
    expect(fake.ran.find(c => c.step === 'retag')!.args).toEqual(['sha256:old', OLD])
    expect(result.deployedImage).toBe(OLD)
  })

  it('puts the rollback record back when .env cannot be written, and restarts nothing', async () => {
    const fake = new FakeServer({ 'write-env': { code: 3, stdout: 'error=cannot replace /srv/a/.env and keep its owner root:root: make deploy its owner' } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result).toMatchObject({ status: 'failed', failedStep: 'write-env' })
    expect(result.error).toMatch(/keep its owner root:root/)
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'record', 'write-env', 'unrecord', 'unlock'])
  })

  it('prunes nothing after a deploy that did not stick, nor when prune is off', async () => {
    const unhealthy = new FakeServer({ health: { code: 5, stdout: 'http=500\nerror=bad' } })
    expect((await runServer(server('a'), context(settings(), { a: unhealthy }))).status).toBe('failed')
    expect(unhealthy.steps()).not.toContain('prune')
    const off = new FakeServer()
    expect((await runServer(server('a'), context(settings({ prune: 'false' }), { a: off }))).status).toBe('deployed')
    expect(off.steps()).not.toContain('prune')
  })

  it('a failed prune costs the deploy nothing', async () => {
    const fake = new FakeServer({ prune: { code: 3, stdout: "error=cannot list the server's containers; no image removed" } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(result.log).toContain("prune failed: cannot list the server's containers; no image removed")
    expect(fake.steps().slice(-2)).toEqual(['history', 'unlock'])
  })

  it('fails without touching the old image again when rollback is off', async () => {
    const fake = new FakeServer({ health: { code: 5, stdout: 'http=500\nerror=bad' } })
    const result = await runServer(server('a'), context(settings({ rollback: 'false' }), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/rollback is off/)
    expect(fake.steps()).not.toContain('retag')
    expect(fake.steps().at(-1)).toBe('unlock')
  })

  it('changes nothing when the image fails to pull', async () => {
    const fake = new FakeServer({ pull: { code: 3, stdout: 'error=docker pull reg.test/openclaw:v2 failed' } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result).toMatchObject({ status: 'failed', failedStep: 'pull' })
    expect(result.error).toContain('docker pull reg.test/openclaw:v2 failed')
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'unlock'])
  })

  it('restarts nothing when the server already runs the image', async () => {
    const fake = new FakeServer({ pull: { stdout: 'image_id=sha256:old' } })
    const result = await runServer(server('a'), context(settings({ image: OLD }), { a: fake }))
    expect(result.status).toBe('unchanged')
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'history', 'unlock'])
  })

  it('takes 5 channels (round trips) for a deploy and 7 for one rolled back', async () => {
    const deployed = new FakeServer()
    expect((await runServer(server('a'), context(settings(), { a: deployed }))).status).toBe('deployed')
    expect(deployed.channels).toEqual([['lock', 'preflight'], ['pull'], ['record', 'write-env', 'up'], ['health'], ['prune', 'forget-env', 'history', 'unlock']])
    const rolledBack = new FakeServer({ health: unhealthyOnce() })
    expect((await runServer(server('a'), context(settings(), { a: rolledBack }))).status).toBe('rolled-back')
    expect(rolledBack.channels).toEqual([['lock', 'preflight'], ['pull'], ['record', 'write-env', 'up'], ['health'], ['retag', 'restore-env', 'up'], ['health'], ['unrecord', 'history', 'unlock']])
  })

  it('keeps the gateway image for rollback when the registry lists other services too', async () => {
    const fake = new FakeServer({
      preflight: { stdout: `service=caddy|no|always\n${GATEWAY}image_var=${OLD}\ncontainer=caddy|caddy:2|sha256:caddy|running\ncontainer=gateway|${OLD}|sha256:old|running` }
    })
    const result = await runServer({ ...server('a'), services: ['caddy', 'gateway'] }, context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(fake.ran.find(c => c.step === 'record')!.args.slice(-4, -2)).toEqual([OLD, 'sha256:old'])
  })

  it('judges health on the gateway service, not on a one-shot container beside it', async () => {
    const fake = new FakeServer({
      preflight: { stdout: `${GATEWAY}image_var=${OLD}\ncontainer=init|busybox|sha256:b|exited\ncontainer=gateway|${OLD}|sha256:old|running` }
    })
    await runServer(server('a'), context(settings(), { a: fake }))
    expect(fake.ran.find(c => c.step === 'health')!.args.slice(4)).toEqual(['gateway'])
  })

  it('redeploying the image that runs (its container had stopped) keeps the earlier rollback record', async () => {
    const fake = new FakeServer({
      preflight: { stdout: `${GATEWAY}image_var=${NEW}\ncontainer=gateway|${NEW}|sha256:new|exited` }
    })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(fake.steps()).not.toContain('record')
  })

  it('reads the running image before pulling, so a moving tag cannot make the new image the rollback target', async () => {
    const fake = new FakeServer({ preflight: { stdout: `${GATEWAY}image_var=${OLD}` }, inspect: { stdout: 'image_id=sha256:old' } })
    await runServer(server('a'), context(settings({ image: '' }), { a: fake }))
    expect(fake.steps().slice(0, 4)).toEqual(['lock', 'preflight', 'inspect', 'pull'])
    expect(fake.ran.find(c => c.step === 'record')!.args.at(-3)).toBe('sha256:old')
  })

  it('reports the lock holder and does nothing else when the lock is held', async () => {
    const fake = new FakeServer({ lock: { code: 4, stdout: 'holder=run 42 by alice' } })
    const result = await runServer(server('a'), context(settings({ 'lock-timeout': '0' }), { a: fake }))
    expect(result).toMatchObject({ status: 'locked', lockHolder: 'run 42 by alice' })
    expect(result.error).toMatch(/run 42 by alice/)
    expect(fake.steps()).toEqual(['lock'])
  })

  it('renews the lock with every channel after the one that takes it, and not after releasing it', async () => {
    const fake = new FakeServer()
    await runServer(server('a'), context(settings(), { a: fake }))
    // preflight shares the lock's channel (the lock is taken with a lease that covers it); the unlock
    // shares the last channel with prune and history, whose renewal comes before them all
    expect(fake.ran.filter(c => c.lease).map(c => c.step)).toEqual(['pull', 'record', 'write-env', 'up', 'health', 'prune', 'forget-env', 'history', 'unlock'])
    expect(fake.ran.find(c => c.step === 'pull')!.lease).toEqual({ state: '/srv/a/.openclaw-deploy', token: 'abc' })
    expect(fake.ran.filter(c => !c.lease).map(c => c.step)).toEqual(['lock', 'preflight'])
  })

  it('takes the lock with a lease that covers the preflight in its channel', async () => {
    const fake = new FakeServer()
    await runServer(server('a'), context(settings({ 'command-timeout': '100' }), { a: fake }))
    // the lock step's last argument is its lease: preflight's bound (100 s), its KILL (5 s) and 30 s slack, as any step's lease
    expect(fake.ran.find(c => c.step === 'lock')!.args.at(-1)).toBe('135')
  })

  it("runs every step that changes what runs under the server's switch lock, in the deploy and its rollback", async () => {
    let healthChecks = 0
    const fake = new FakeServer({ health: () => (++healthChecks === 1 ? { code: 5, stdout: 'http=500' } : { stdout: 'health=ok\nhttp=200' }) })
    await runServer(server('a'), context(settings({ 'command-timeout': '50' }), { a: fake }))
    // (history and unlock share the last channel with unrecord, so they run under its switch lock too)
    expect(fake.ran.filter(c => c.exclusive).map(c => c.step)).toEqual(['record', 'write-env', 'up', 'retag', 'restore-env', 'up', 'unrecord', 'history', 'unlock'])
    expect(fake.ran.filter(c => !c.exclusive).map(c => c.step)).toEqual(['lock', 'preflight', 'pull', 'health', 'health'])
    // the switch lock is held for the whole channel: each of its three parts' bound (50 s) and KILL (5 s)
    expect(fake.ran.find(c => c.step === 'up')!.exclusive).toEqual({ state: '/srv/a/.openclaw-deploy', seconds: 3 * 55 })
  })

  it('takes over an expired lock with a warning naming the old holder, and deploys', async () => {
    const fake = new FakeServer({ lock: { stdout: 'took_over=run 7 by bob token=old\nexpired_for=95\nlocked=yes' } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(result.warnings).toEqual(['took over the deploy lock of run 7 by bob token=old, whose lease had expired 95s ago (that run was killed or lost the server)'])
    expect(result.log).toContain(`warning: ${result.warnings![0]}`)
  })

  it('stops touching the server, and rolls nothing back, once another run took its expired lock over', async () => {
    const fake = new FakeServer({ up: { code: 6, stdout: 'lock_lost=run 8 by carol token=new\nerror=this run no longer holds the deploy lock' } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/up: this run lost the deploy lock of \/srv\/a\/.openclaw-deploy\/lock to run 8 by carol token=new .* it may be left half-switched/)
    expect(fake.steps().slice(-2)).toEqual(['up', 'unlock'])
  })

  it.each([
    ['a lease', 'holder=run 42 by alice token=x\nexpires_in=300', /waited 0s \(lock-timeout\); its lease ends in 300s unless that run renews it/],
    ['no expiry', 'holder=run 42 by alice\nexpires_in=', /that lock has no expiry .*: remove \/srv\/a\/.openclaw-deploy\/lock by hand if no deploy runs/]
  ])('says when a held lock with %s will be free', async (_what, stdout, message) => {
    const fake = new FakeServer({ lock: { code: 4, stdout } })
    const result = await runServer(server('a'), context(settings({ 'lock-timeout': '0' }), { a: fake }))
    expect(result.status).toBe('locked')
    expect(result.error).toMatch(message)
  })

  it('reports a lock that cannot be created as a failure with the reason, not as held', async () => {
    const fake = new FakeServer({ lock: { code: 3, stdout: 'error=cannot create the lock /srv/a/.openclaw-deploy/lock: cannot create directory: Read-only file system' } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result).toMatchObject({ status: 'failed', failedStep: 'lock', error: 'lock failed: cannot create the lock /srv/a/.openclaw-deploy/lock: cannot create directory: Read-only file system' })
    expect(result.lockHolder).toBeUndefined()
    expect(fake.steps()).toEqual(['lock'])
  })

  it('stops at the lock, creating nothing, when the deployment folder does not exist', async () => {
    const fake = new FakeServer({
      lock: { code: 3, stdout: "error=deployment folder /srv/a does not exist on gw-1: set the server's path in the registry to the folder that holds docker-compose.yml and .env" }
    })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result).toMatchObject({ status: 'failed', failedStep: 'lock' })
    expect(result.error).toBe("lock failed: deployment folder /srv/a does not exist on gw-1: set the server's path in the registry to the folder that holds docker-compose.yml and .env")
    expect(fake.steps()).toEqual(['lock'])
    expect(fake.ran[0]!.args[0]).toBe('/srv/a')
  })

  it('adds the variable when .env lacks it and the compose default ran; a rollback restores the file as it was', async () => {
    let checks = 0
    const fake = new FakeServer({
      preflight: { stdout: `${GATEWAY}container=gateway|openclaw:local|sha256:old|running` },
      health: () => (++checks === 1 ? { code: 5, stdout: 'http=500\nerror=bad' } : { stdout: 'health=ok\nhttp=200' })
    })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result).toMatchObject({ status: 'rolled-back', previousImage: 'openclaw:local', deployedImage: 'openclaw:local' })
    expect(written(fake.ran.find(c => c.step === 'write-env')!)).toEqual({ OPENCLAW_IMAGE: NEW })
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'record', 'write-env', 'up', 'health', 'retag', 'restore-env', 'up', 'health', 'unrecord', 'history', 'unlock'])
  })

  it('refuses a compose file that does not take the image from the variable, before anything changes', async () => {
    const fake = new FakeServer({ preflight: { stdout: `compose=compose.yaml\nservice=gateway|no|unless-stopped\nimage_var=${OLD}\ncontainer=gateway|${OLD}|sha256:old|running` } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/^\/srv\/a\/compose.yaml takes no service's image from \$\{OPENCLAW_IMAGE\}.*Nothing was changed\.$/)
    expect(fake.steps()).toEqual(['lock', 'preflight', 'unlock'])
  })

  it('names the variable when there is no image to deploy', async () => {
    const fake = new FakeServer({ preflight: { stdout: GATEWAY } })
    const result = await runServer(server('a'), context(settings({ image: '' }), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/the input "image" is empty and \/srv\/a\/.env has no OPENCLAW_IMAGE= line/)
    expect(fake.steps()).toEqual(['lock', 'preflight', 'unlock'])
  })

  it.each([
    ['network', new ConnectError('cannot connect', 'network'), 'unreachable'],
    ['host-key', new ConnectError('HOST KEY MISMATCH', 'host-key'), 'failed'],
    ['auth', new ConnectError('did not accept the SSH key', 'auth'), 'failed']
  ])('a %s connection error ends as %s', async (_kind, error, status) => {
    const result = await runServer(server('a'), context(settings(), { a: error }))
    expect(result.status).toBe(status)
    expect(result.error).toBe(error.message)
  })

  it('reconnects after losing the connection mid-switch and restores the previous image', async () => {
    let ups = 0
    const fake = new FakeServer({
      up: () => {
        if (++ups === 1) throw new ConnectionLost('up: connection closed')
        return {}
      }
    })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('rolled-back')
    expect(result.error).toMatch(/connection closed; reconnected and restored reg.test\/openclaw:v1/)
    expect(fake.steps().slice(-7)).toEqual(['retag', 'restore-env', 'up', 'health', 'unrecord', 'history', 'unlock'])
  })

  it('after losing the connection in a first deploy (nothing to roll back to), does not claim nothing changed', async () => {
    let ups = 0
    const fake = new FakeServer({
      preflight: { stdout: `${GATEWAY}image_var=${OLD}` },
      inspect: { stdout: 'image_id=' },
      up: () => {
        if (++ups === 1) throw new ConnectionLost('up: connection closed')
        return {}
      }
    })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('unreachable')
    expect(result.error).toMatch(/connection closed; reconnected: no image ran here before this deploy, so there is nothing to roll back to: stopped gateway, so nothing is left restarting/)
    expect(result.error).not.toMatch(/nothing had been changed/)
    // what the first deploy started is stopped once reconnected, under the switch lock (it waits for an up left running)
    expect(fake.steps().slice(-3)).toEqual(['up', 'stop', 'unlock'])
    expect(fake.ran.find(c => c.step === 'stop')).toMatchObject({ args: ['/srv/a', 'OPENCLAW_IMAGE', 'gateway'], exclusive: expect.anything() })
  })

  it('is unreachable, not hung, when the server stays cut off', async () => {
    const cutOff = () => {
      throw new ConnectionLost('connection closed')
    }
    // (every channel after the cut fails as on the dead connection: the last one too)
    const fake = new FakeServer({ up: cutOff, prune: cutOff, unlock: cutOff })
    let connects = 0
    const ctx = context(settings(), { a: fake })
    ctx.connect = async () => {
      if (++connects > 1) throw new ConnectError('cannot connect', 'network')
      return fake
    }
    const result = await runServer(server('a'), ctx)
    expect(result.status).toBe('unreachable')
    expect(result.error).toMatch(/could not reconnect \(cannot connect\): the server may be left half-switched.*lock may remain/)
    // the last channel does not wait for the server again: it was just found unreachable
    expect(connects).toBe(2)
  })

  describe('a connection lost in the last channel (prune, history, unlock)', () => {
    const LAST = ['prune', 'forget-env', 'history', 'unlock']
    /** An unlock whose first answer is lost with the connection (the server may or may not have run it). */
    function lostOnce(): Reply {
      let unlocks = 0
      return () => {
        if (++unlocks === 1) throw new ConnectionLost('unlock: Keepalive timeout')
        return { stdout: 'released=yes' }
      }
    }

    it('reconnects and sends the whole channel again, so no lock is left for its lease to end', async () => {
      const fake = new FakeServer({ unlock: lostOnce() })
      let connects = 0
      const ctx = context(settings(), { a: fake })
      ctx.connect = async () => (++connects, fake)
      const result = await runServer(server('a'), ctx)
      expect(result.status).toBe('deployed')
      expect(connects).toBe(2)
      expect(fake.channels.slice(-2)).toEqual([LAST, LAST])
      // the second channel still renews the lease first: it only touches the server while the lock is this run's
      expect(fake.ran.slice(-4).every(c => c.lease)).toBe(true)
      expect(result.log).toContain('connection lost in the last channel (prune, forget-env, history, unlock): unlock: Keepalive timeout; reconnecting to send it again')
      expect(result.warnings).toBeUndefined()
    })

    it("touches nothing more when, once reconnected, the lock is no longer this run's", async () => {
      let sent = 0
      const fake = new FakeServer({
        unlock: lostOnce(),
        // the lease renewal that starts the resent channel finds the first channel's unlock ran
        // (on a server it ends the channel there; this fake answers its other parts too, unread)
        prune: () => (++sent === 1 ? { stdout: 'removed=1' } : { code: 6, stdout: 'lock_lost=\nerror=this run no longer holds the deploy lock' })
      })
      const result = await runServer(server('a'), context(settings(), { a: fake }))
      expect(result.status).toBe('deployed')
      expect(result.log.filter(line => line === 'unlock: ok')).toEqual([])
      expect(result.log.at(-1)).toMatch(/^reconnected: the lock \/srv\/a\/.openclaw-deploy\/lock is no longer this run's .*so the last steps were not sent again$/)
      expect(result.warnings).toBeUndefined()
    })

    it('warns that the lock is left, naming it, when the server cannot be reached again', async () => {
      const fake = new FakeServer({ unlock: lostOnce() })
      let connects = 0
      const ctx = context(settings(), { a: fake })
      ctx.connect = async () => {
        if (++connects > 1) throw new ConnectError('cannot connect to a.test:22 within 30s', 'network')
        return fake
      }
      const result = await runServer(server('a'), ctx)
      expect(result.status).toBe('deployed')
      expect(result.warnings).toEqual(['could not release the lock: cannot connect to a.test:22 within 30s; remove /srv/a/.openclaw-deploy/lock by hand once no deploy runs'])
    })

    it('does not reconnect once the run is cancelled (the post step releases the lock)', async () => {
      const abort = new AbortController()
      const fake = new FakeServer({
        unlock: () => {
          abort.abort()
          throw new ConnectionLost('unlock: cancelled')
        }
      })
      let connects = 0
      const ctx = context(settings(), { a: fake }, abort)
      ctx.connect = async () => (++connects, fake)
      await runServer(server('a'), ctx)
      expect(connects).toBe(1)
      expect(fake.steps().filter(s => s === 'unlock')).toHaveLength(1)
    })
  })
})

/**
 * Upstream OpenClaw's project as preflight reports it: both services take the image from the
 * variable, only the gateway has a restart policy; `containers` are CONTAINER_FORMAT lines.
 */
function upstream(...containers: string[]): Reply {
  const services = 'service=openclaw-cli|yes|\nservice=openclaw-gateway|yes|unless-stopped\n'
  return { stdout: `compose=docker-compose.yml\n${services}${containers.map(c => `container=${c}\n`).join('')}` }
}
const GATEWAY_RUNS = `openclaw-gateway|${OLD}|sha256:old|running|false|0|0|unless-stopped`
const CLI_EXITED = `openclaw-cli|${OLD}|sha256:old|exited|false|0|0|no`
/** A gateway that crash-loops: health fails on the container, whatever the URL says. */
const CRASH_LOOP = {
  code: 5,
  stdout: 'health=failed\nhttp=000\ncontainers=openclaw-gateway:restarting:1:4:unless-stopped:bad\nerror=not healthy within 60s: http://127.0.0.1:18789/health answered HTTP 000'
}
const upArgs = (fake: FakeServer) => fake.ran.filter(c => c.step === 'up').map(c => c.args.slice(2))

describe('which services a deploy brings up (no "services" in the registry)', () => {
  it('recreates only the gateway when an exited openclaw-cli stands beside it, and judges only the gateway', async () => {
    const fake = new FakeServer({ preflight: upstream(CLI_EXITED, GATEWAY_RUNS) })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(upArgs(fake)).toEqual([['openclaw-gateway']])
    expect(fake.ran.find(c => c.step === 'health')!.args.slice(4)).toEqual(['openclaw-gateway'])
    // the rollback target is what the gateway runs
    expect(fake.ran.find(c => c.step === 'record')!.args.slice(-4, -2)).toEqual([OLD, 'sha256:old'])
  })

  it('rolls back the gateway alone too, and ends rolled-back although openclaw-cli has exited', async () => {
    const fake = new FakeServer({ preflight: upstream(CLI_EXITED, GATEWAY_RUNS), health: unhealthyOnce() })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('rolled-back')
    expect(upArgs(fake)).toEqual([['openclaw-gateway'], ['openclaw-gateway']])
  })

  it('moves every service that runs: an openclaw-cli that runs too is recreated with the gateway', async () => {
    const cliRuns = `openclaw-cli|${OLD}|sha256:old|running|false|0|0|no`
    const fake = new FakeServer({ preflight: upstream(cliRuns, GATEWAY_RUNS) })
    expect((await runServer(server('a'), context(settings(), { a: fake }))).status).toBe('deployed')
    expect(upArgs(fake)).toEqual([['openclaw-cli', 'openclaw-gateway']])
  })

  it('on a fresh server (nothing ran) starts only the services with a restart policy that take the variable: the gateway, never openclaw-cli', async () => {
    const fresh: Reply = { stdout: 'compose=docker-compose.yml\nservice=caddy|no|always\nservice=openclaw-cli|yes|\nservice=openclaw-gateway|yes|unless-stopped\n' }
    const fake = new FakeServer({ preflight: fresh })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(upArgs(fake)).toEqual([['openclaw-gateway']])
    expect(fake.steps()).not.toContain('record')
  })

  it('starts the gateway on a server where it and openclaw-cli have both exited, not the CLI', async () => {
    const gatewayExited = `openclaw-gateway|${OLD}|sha256:old|exited|false|0|0|unless-stopped`
    const fake = new FakeServer({ preflight: upstream(CLI_EXITED, gatewayExited) })
    expect((await runServer(server('a'), context(settings(), { a: fake }))).status).toBe('deployed')
    expect(upArgs(fake)).toEqual([['openclaw-gateway']])
  })

  it('refuses, changing nothing, when nothing runs and only services without a restart policy take the variable', async () => {
    const onlyCli: Reply = { stdout: 'compose=docker-compose.yml\nservice=openclaw-cli|yes|\nservice=openclaw-gateway|no|unless-stopped\n' }
    const fake = new FakeServer({ preflight: onlyCli })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toBe(
      'nothing of the project in /srv/a runs yet, and the only services that take their image from ${OPENCLAW_IMAGE} (openclaw-cli) have no restart policy, ' +
        'so none is meant to stay up (an interactive tool such as openclaw-cli is run with docker compose run): give the gateway restart: unless-stopped, ' +
        'or list the services to start in the registry\'s "services". Nothing was changed.'
    )
    expect(fake.steps()).toEqual(['lock', 'preflight', 'unlock'])
  })

  it('starts what the registry lists, even a service without a restart policy', async () => {
    const onlyCli: Reply = { stdout: 'compose=docker-compose.yml\nservice=openclaw-cli|yes|\n' }
    const fake = new FakeServer({ preflight: onlyCli, health: { stdout: 'health=ok\nhttp=200\ncontainers=openclaw-cli:exited:0:0:no:ok' } })
    const result = await runServer({ ...server('a'), services: ['openclaw-cli'] }, context(settings(), { a: fake }))
    expect(result.status).toBe('deployed')
    expect(upArgs(fake)).toEqual([['openclaw-cli']])
  })
})

describe('a first deploy (nothing ran before, so no image to roll back to) that is not healthy', () => {
  it('stops what it started, so nothing is left restarting, and says so', async () => {
    const fake = new FakeServer({ preflight: upstream(), health: CRASH_LOOP })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toBe(
      'health failed: not healthy within 60s: http://127.0.0.1:18789/health answered HTTP 000; containers: openclaw-gateway restarting after 4 restarts (failing); ' +
        'no previous image to roll back to: stopped openclaw-gateway, so nothing is left restarting (the containers and their logs stay)'
    )
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'write-env', 'up', 'health', 'stop', 'history', 'unlock'])
    // its own channel, bounded by command-timeout, under the switch lock and the lease, as every switching step
    expect(fake.channels.at(-2)).toEqual(['stop'])
    const stop = fake.ran.find(c => c.step === 'stop')!
    expect(stop).toMatchObject({ args: ['/srv/a', 'OPENCLAW_IMAGE', 'openclaw-gateway'], exclusive: expect.anything(), lease: expect.anything() })
    expect(stop.script).toContain('docker compose stop -- "$@"')
    expect(result.log.join('\n')).toMatch(/stopped openclaw-gateway: nothing ran here before this deploy/)
    expect(fake.ran.find(c => c.step === 'history')!.args[1]).toMatch(/\tfailed\t\(none\) -> reg.test\/openclaw:v2\t/)
  })

  it('stops it with rollback off too, and when compose up itself failed', async () => {
    const off = new FakeServer({ preflight: upstream(), health: CRASH_LOOP })
    const result = await runServer(server('a'), context(settings({ rollback: 'false' }), { a: off }))
    expect(result.error).toMatch(/no previous image to roll back to: stopped openclaw-gateway, so nothing is left restarting/)
    const upFailed = new FakeServer({ preflight: upstream(), up: { code: 3, stdout: 'error=docker compose up failed: port is already allocated' } })
    const failed = await runServer(server('a'), context(settings(), { a: upFailed }))
    expect(failed.error).toMatch(/^up failed: docker compose up failed: port is already allocated; no previous image to roll back to: stopped openclaw-gateway/)
    expect(upFailed.steps()).toEqual(['lock', 'preflight', 'pull', 'write-env', 'up', 'stop', 'history', 'unlock'])
  })

  it('says so when the stop fails too', async () => {
    const fake = new FakeServer({ preflight: upstream(), health: CRASH_LOOP, stop: { code: 3, stdout: 'error=docker compose stop failed: Cannot connect to the Docker daemon' } })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(
      /; no previous image to roll back to: stopping openclaw-gateway failed too \(stop failed: docker compose stop failed: Cannot connect to the Docker daemon\), so it may be left restarting: check what runs there$/
    )
  })

  it('a later deploy that fails, where the gateway stands stopped on such an image, stops it again after its rollback fails too', async () => {
    // what the first deploy left: the gateway's container exited on the image that crash-looped
    const stoppedGateway = `openclaw-gateway|${OLD}|sha256:old|exited|false|1|4|unless-stopped`
    const fake = new FakeServer({ preflight: upstream(stoppedGateway), health: CRASH_LOOP })
    const result = await runServer(server('a'), context(settings(), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(
      new RegExp(
        `; rollback to ${OLD.replace(/[.]/g, '\\.')} did not become healthy either; ${OLD.replace(/[.]/g, '\\.')} did not run before this deploy either: stopped openclaw-gateway, so nothing is left restarting`
      )
    )
    expect(fake.steps().slice(-5)).toEqual(['up', 'health', 'stop', 'history', 'unlock'])
    // while a gateway that ran before is left to its restart policy once its own rollback fails
    const ran = new FakeServer({ preflight: upstream(GATEWAY_RUNS), health: CRASH_LOOP })
    const kept = await runServer(server('a'), context(settings(), { a: ran }))
    expect(kept.error).toMatch(/did not become healthy either$/)
    expect(ran.steps()).not.toContain('stop')
  })

  it('mode: rollback to a recorded image that is not healthy, where nothing runs, stops it as well', async () => {
    const record = { stdout: `image=${OLD}\nimage_id=sha256:old\ntag=openclaw-rollback:srv_a` }
    const fake = new FakeServer({ preflight: { stdout: `${GATEWAY}image_var=${NEW}` }, inspect: { stdout: 'image_id=' }, 'read-rollback': record, health: CRASH_LOOP })
    const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/; no image ran before, so there is nothing to go back to: stopped gateway, so nothing is left restarting/)
    expect(fake.steps().slice(-4)).toEqual(['health', 'stop', 'history', 'unlock'])
  })
})

describe('the rollback tag', () => {
  const tagOf = (path: string) => rollbackTag({ ...server('a'), path })
  // Docker's rule for a tag, and the repository part the action uses.
  const validTag = /^openclaw-rollback:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
  const paths = fc
    .array(fc.string({ unit: fc.constantFrom('a', 'b', '_', '-', '.', '/', ' ', 'é', '$'), minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 30 })
    .map(parts => `/${parts.join('/')}`)

  it('keeps folders apart whose names only differ in a slash, and reads as the folder', () => {
    expect(tagOf('/srv/a_b')).not.toBe(tagOf('/srv/a/b'))
    expect(tagOf('/home/deploy/openclaw-prd')).toMatch(/^openclaw-rollback:home_deploy_openclaw-prd-[0-9a-f]{12}$/)
    expect(tagOf('/srv/app/')).toBe(tagOf('/srv/app'))
  })

  it('is a valid Docker tag of at most 128 characters for any path, and one per path', () => {
    fc.assert(
      fc.property(paths, paths, (p, q) => {
        expect(tagOf(p)).toMatch(validTag)
        if (p.replace(/\/+$/, '') !== q.replace(/\/+$/, '')) expect(tagOf(p)).not.toBe(tagOf(q))
      }),
      { numRuns: 500 }
    )
    expect(tagOf(`/${'x'.repeat(300)}`)).toMatch(validTag)
    expect(tagOf('/')).toMatch(validTag)
    expect(tagOf('/.hidden/-dash')).toMatch(validTag)
  })
})

it('describes container states for people', () => {
  expect(describeContainers('openclaw-gateway:running:0:0:unless-stopped:ok openclaw-cli:exited:0:0:no:ok ')).toBe('openclaw-gateway running, openclaw-cli exited 0')
  expect(describeContainers('gateway:running:0:0:always:ok worker:restarting:1:3:always:bad job:exited:2:0:no:bad')).toBe(
    'gateway running, worker restarting after 3 restarts (failing), job exited 2 (failing)'
  )
  expect(describeContainers('none')).toBe('no containers')
})

describe('mode: rollback and mode: status', () => {
  const record = { stdout: `image=${OLD}\nimage_id=sha256:old\ntag=openclaw-rollback:srv_a` }
  const onNew = { stdout: `${GATEWAY}image_var=${NEW}\ncontainer=gateway|${NEW}|sha256:new|running` }

  it('restores the recorded image without pulling, and reports it like a deploy', async () => {
    const fake = new FakeServer({ preflight: onNew, 'read-rollback': record })
    const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
    expect(result).toMatchObject({ status: 'deployed', previousImage: NEW, deployedImage: OLD })
    expect(fake.steps()).toEqual(['lock', 'preflight', 'read-rollback', 'retag', 'write-env', 'up', 'health', 'history', 'unlock'])
    expect(written(fake.ran.find(c => c.step === 'write-env')!)).toEqual({ OPENCLAW_IMAGE: OLD })
  })

  it('works with a record written by an earlier version, whose tag had no hash: it restores by image ID', async () => {
    const legacy = { stdout: `image=${OLD}\nimage_id=sha256:old\ntag=openclaw-rollback:srv_a` }
    const fake = new FakeServer({ preflight: onNew, 'read-rollback': legacy })
    const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
    expect(result).toMatchObject({ status: 'deployed', deployedImage: OLD, deployedImageId: 'sha256:old' })
    expect(fake.ran.find(c => c.step === 'retag')!.args).toEqual(['sha256:old', OLD])
  })

  describe('when the recorded image is not healthy', () => {
    const unhealthyFirst = () => unhealthyOnce('health=failed\nhttp=404\nerror=not healthy within 60s: http://127.0.0.1:18789/health answered HTTP 404')

    it('goes back to the image that ran when the rollback started, keeps the record, and says so', async () => {
      const fake = new FakeServer({ preflight: onNew, 'read-rollback': record, health: unhealthyFirst() })
      const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
      expect(result).toMatchObject({ status: 'rolled-back', previousImage: NEW, deployedImage: NEW, deployedImageId: 'sha256:new' })
      expect(result.error).toBe(
        `health failed: not healthy within 60s: http://127.0.0.1:18789/health answered HTTP 404; the recorded image ${OLD} did not become healthy; ` +
          `went back to ${NEW}, which ran before and is healthy; the rollback record is kept`
      )
      expect(fake.steps()).toEqual(['lock', 'preflight', 'read-rollback', 'retag', 'write-env', 'up', 'health', 'retag', 'restore-env', 'up', 'health', 'history', 'unlock'])
      expect(fake.ran.filter(c => c.step === 'retag').map(c => c.args)).toEqual([
        ['sha256:old', OLD],
        ['sha256:new', NEW]
      ])
      // .env ends with the bytes it had: the server restores the copy it kept of it
    })

    it('reads what runs before re-pointing any tag, when no container of the project runs', async () => {
      const stopped = { stdout: `${GATEWAY}image_var=${NEW}` }
      const fake = new FakeServer({ preflight: stopped, 'read-rollback': record, inspect: { stdout: 'image_id=sha256:new' }, health: unhealthyFirst() })
      const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
      expect(result.status).toBe('rolled-back')
      expect(fake.steps().slice(0, 5)).toEqual(['lock', 'preflight', 'read-rollback', 'inspect', 'retag'])
      expect(fake.ran.filter(c => c.step === 'retag').at(-1)!.args).toEqual(['sha256:new', NEW])
    })

    it('is failed when going back is not healthy either, or rollback is off', async () => {
      const sick = new FakeServer({ preflight: onNew, 'read-rollback': record, health: { code: 5, stdout: 'health=failed\nhttp=500\nerror=not healthy within 60s' } })
      const both = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: sick }))
      expect(both.status).toBe('failed')
      expect(both.error).toMatch(new RegExp(`recorded image ${OLD} did not become healthy; going back to ${NEW}, which ran before, did not become healthy either$`))

      const off = new FakeServer({ preflight: onNew, 'read-rollback': record, health: unhealthyFirst() })
      const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '', rollback: 'false' }), { a: off }))
      expect(result.status).toBe('failed')
      expect(result.error).toMatch(/rollback is off, so reg.test\/openclaw:v2 was not restored$/)
      expect(off.steps().filter(s => s === 'retag')).toHaveLength(1)
    })

    it('names the missing image when the recorded one was removed from the server', async () => {
      const fake = new FakeServer({
        preflight: onNew,
        'read-rollback': record,
        retag: c => (c.args[0] === 'sha256:old' ? { code: 3, stdout: `error=cannot tag image sha256:old as ${OLD} (was it removed?)` } : {})
      })
      const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
      expect(result.status).toBe('rolled-back')
      expect(result.error).toMatch(/^retag failed: cannot tag image sha256:old as .* \(was it removed\?\); the recorded image/)
    })
  })

  it('restarts nothing when the server already runs the recorded image', async () => {
    const fake = new FakeServer({ 'read-rollback': record })
    const result = await runServer(server('a'), context(settings({ mode: 'rollback', image: '' }), { a: fake }))
    expect(result.status).toBe('unchanged')
    expect(fake.steps()).toEqual(['lock', 'preflight', 'read-rollback', 'unlock'])
  })

  const stateOut = 'last=2026-11-26T10:00:00Z\tdeployed\ta -> b\nholder=run 5 by bob '

  it('status reads and changes nothing, and takes no lock: one command, one round trip', async () => {
    const fake = new FakeServer({ status: { stdout: `${STATUS}\n${stateOut}\nhealth=ok\nhttp=200\ncontainers=gateway:running:0:0:unless-stopped:ok` } })
    const result = await runServer(server('a'), context(settings({ mode: 'status', image: '' }), { a: fake }))
    expect(result).toMatchObject({ status: 'healthy', deployedImage: OLD, lockHolder: 'run 5 by bob', lastDeploy: '2026-11-26T10:00:00Z\tdeployed\ta -> b' })
    expect(fake.steps()).toEqual(['status'])
  })

  it('status tells a failed preflight (failed) from an unhealthy gateway (unhealthy)', async () => {
    const broken = new FakeServer({ status: { code: 3, stdout: 'error=no .env in /srv/a' } })
    expect(await runServer(server('a'), context(settings({ mode: 'status', image: '' }), { a: broken }))).toMatchObject({
      status: 'failed',
      failedStep: 'preflight',
      error: 'preflight failed: no .env in /srv/a'
    })
    const sick = new FakeServer({
      status: { code: 5, stdout: `${STATUS}\n${stateOut}\nhealth=failed\nhttp=500\ncontainers=gateway:running:0:0:unless-stopped:ok\nerror=not healthy within 10s` }
    })
    expect(await runServer(server('a'), context(settings({ mode: 'status', image: '' }), { a: sick }))).toMatchObject({ status: 'unhealthy', deployedImage: OLD })
  })
})

describe('a cancelled run (SIGINT/SIGTERM)', () => {
  function cancelling(replies: Record<string, Reply>) {
    const abort = new AbortController()
    const fake = new FakeServer(replies)
    fake.onHang = () => abort.abort()
    return { abort, fake }
  }

  it.each(['preflight', 'pull'])('stops a server in %s at once, changes nothing and releases its lock', async step => {
    const { abort, fake } = cancelling({ [step]: HANG })
    const started = Date.now()
    const result = await runServer(server('a'), context(settings(), { a: fake }, abort))
    expect(Date.now() - started).toBeLessThan(1000)
    expect(result).toMatchObject({ status: 'skipped', error: 'cancelled before any change on this server; its lock was released' })
    expect(fake.steps().at(-2)).toBe(step)
    expect(fake.steps().at(-1)).toBe('unlock')
    expect(fake.steps()).not.toContain('write-env')
  })

  it('stops waiting for a held lock between two short rounds', async () => {
    const abort = new AbortController()
    let rounds = 0
    const fake = new FakeServer({
      lock: () => {
        if (++rounds === 2) abort.abort()
        return { code: 4, stdout: 'holder=run 1 token=x\nexpires_in=500' }
      }
    })
    const result = await runServer(server('a'), context(settings({ 'lock-timeout': '600' }), { a: fake }, abort))
    expect(result).toMatchObject({ status: 'skipped', error: 'cancelled while waiting for the lock; nothing changed on this server' })
    expect(fake.steps()).toEqual(['lock', 'lock'])
    for (const lock of fake.ran) expect(Number(lock.args[3])).toBeLessThanOrEqual(2)
  })

  it('restores the previous image with a short health wait when the cancel comes during the health check', async () => {
    let checks = 0
    const { abort, fake } = cancelling({ health: () => (++checks === 1 ? HANG : { stdout: 'health=ok\nhttp=200' }) })
    const result = await runServer(server('a'), context(settings({ 'health-timeout': '120' }), { a: fake }, abort))
    expect(result.status).toBe('rolled-back')
    expect(result.error).toBe('cancelled during the deploy; restored reg.test/openclaw:v1, which is healthy')
    expect(fake.steps().slice(-8)).toEqual(['health', 'retag', 'restore-env', 'up', 'health', 'unrecord', 'history', 'unlock'])
    const [first, restored] = fake.ran.filter(c => c.step === 'health')
    expect(first!.args[2]).toBe('120')
    expect(restored!.args[2]).toBe('4')
  })
})

describe('the fleet', () => {
  const names = ['s1', 's2', 's3', 's4', 's5', 's6']

  it('never runs more than max-parallel servers at once, and keeps plan order in the results', async () => {
    const stats = { now: 0, max: 0 }
    const fakes = Object.fromEntries(names.map(n => [n, new FakeServer({}, 5, stats)]))
    const results = await runFleet(names.map(server), context(settings({ 'max-parallel': '2' }), fakes))
    expect(results.map(r => r.server.name)).toEqual(names)
    expect(results.every(r => r.status === 'deployed')).toBe(true)
    expect(stats.max).toBe(2)
  })

  it('one server failing does not stop the others', async () => {
    const fakes = Object.fromEntries(names.map(n => [n, n === 's2' ? new Error('boom') : new FakeServer()]))
    const results = await runFleet(names.map(server), context(settings(), fakes))
    expect(results.map(r => r.status)).toEqual(['deployed', 'unreachable', 'deployed', 'deployed', 'deployed', 'deployed'])
  })

  it('starts no other server when a canary fails', async () => {
    const fakes = Object.fromEntries(names.map(n => [n, new FakeServer(n === 's1' ? { pull: { code: 3 } } : {})]))
    const results = await runFleet(names.map(server), context(settings({ canary: '2' }), fakes))
    expect(results.map(r => r.status)).toEqual(['failed', 'deployed', 'skipped', 'skipped', 'skipped', 'skipped'])
    expect(results[2]!.error).toMatch(/canary failed: s1 \(failed\)/)
    expect((fakes.s3 as FakeServer).ran).toEqual([])
  })

  it('starts no further server once max-failures is exceeded', async () => {
    const fakes = Object.fromEntries(names.map(n => [n, new FakeServer(['s1', 's2'].includes(n) ? { pull: { code: 3 } } : {})]))
    const results = await runFleet(names.map(server), context(settings({ 'max-parallel': '1', 'max-failures': '1' }), fakes))
    expect(results.map(r => r.status)).toEqual(['failed', 'failed', 'skipped', 'skipped', 'skipped', 'skipped'])
    expect(results[5]!.error).toMatch(/max-failures \(1\) exceeded: 2 server/)
  })

  it('computes the failure budget from a count or a percentage', () => {
    expect(failuresAllowed(undefined, 10)).toBe(Infinity)
    expect(failuresAllowed({ kind: 'count', value: 3 }, 10)).toBe(3)
    expect(failuresAllowed({ kind: 'percent', value: 25 }, 10)).toBe(2)
  })

  it('says the servers after a cancelled canary were cancelled, not that the canary failed', async () => {
    const abort = new AbortController()
    const fakes = Object.fromEntries(names.map(n => [n, new FakeServer(n === 's1' ? { pull: HANG } : {})]))
    ;(fakes.s1 as FakeServer).onHang = () => abort.abort()
    const results = await runFleet(names.map(server), context(settings({ canary: '1' }), fakes, abort))
    expect(results.map(r => r.status)).toEqual(['skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'])
    expect(results[0]!.error).toMatch(/^cancelled before any change/)
    for (const r of results.slice(1)) expect(r.error).toBe('cancelled: the run was cancelled before this server started')
  })

  it('starts nothing new after cancellation', async () => {
    const abort = new AbortController()
    const fakes = Object.fromEntries(names.map(n => [n, new FakeServer({}, 5)]))
    const run = runFleet(names.map(server), context(settings({ 'max-parallel': '2' }), fakes, abort))
    abort.abort()
    const results = await run
    expect(results.map(r => r.status)).toEqual(['skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'])
    for (const f of Object.values(fakes)) expect((f as FakeServer).steps()).not.toContain('write-env')
  })
})

describe('tenant-env and mode: rotate-token', () => {
  const SECRETS = { '*': { OPENCLAW_SKIP_BROWSER_CONTROL_SERVER: 'yes-skip' }, 't-a': { CLAUDE_AI_SESSION_KEY: 'sk-ant "quoted" $HOME #x\nline two' } }
  /** Settings read the way the action reads them; the masks it prints are not what this looks at. */
  function withTenantEnv(inputs: Record<string, string> = {}, tenantEnv: object = SECRETS): Settings {
    return settings({ 'tenant-env': JSON.stringify(tenantEnv), ...inputs })
  }
  const onNew = { stdout: `${GATEWAY}image_var=${NEW}\ncontainer=gateway|${NEW}|sha256:new|running` }
  const sameImage = { preflight: onNew, pull: { stdout: 'image_id=sha256:new' } }
  const unhealthyFirst = () => unhealthyOnce()

  it("sets the image and the tenant's values in one write, and names the changed variables", async () => {
    const fake = new FakeServer({ 'write-env': { stdout: 'written=OPENCLAW_IMAGE CLAUDE_AI_SESSION_KEY' } })
    const result = await runServer(server('a'), context(withTenantEnv(), { a: fake }))
    expect(result).toMatchObject({ status: 'deployed', deployedImage: NEW, changedVariables: ['CLAUDE_AI_SESSION_KEY'] })
    expect(fake.steps().filter(s => s === 'write-env')).toHaveLength(1)
    expect(written(fake.ran.find(c => c.step === 'write-env')!)).toEqual({ OPENCLAW_IMAGE: NEW, ...SECRETS['*'], ...SECRETS['t-a'] })
    expect(result.log).toContain('.env: changed CLAUDE_AI_SESSION_KEY')
  })

  it('names only variables this run sent, each once, whatever the server says it wrote', async () => {
    const hostile = `written=${['CLAUDE_AI_SESSION_KEY', 'CLAUDE_AI_SESSION_KEY', 'OPENCLAW_IMAGE', 'EVIL_[x](https://evil.test)', ...Array.from({ length: 50_000 }, (_, i) => `NAME_${i}`)].join(' ')}`
    const fake = new FakeServer({ 'write-env': { stdout: hostile } })
    const result = await runServer(server('a'), context(withTenantEnv(), { a: fake }))
    expect(result).toMatchObject({ status: 'deployed', changedVariables: ['CLAUDE_AI_SESSION_KEY'] })
    expect(result.log).toContain('.env: changed CLAUDE_AI_SESSION_KEY')
  })

  it('a ~1 MB written= line from one server costs no other server its place in the results or the summary', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `s${i}`)
    const flood = `written=CLAUDE_AI_SESSION_KEY ${Array.from({ length: 100_000 }, (_, i) => `X${i}`).join(' ')}`
    const fakes = Object.fromEntries(names.map((n, i) => [n, new FakeServer({ 'write-env': { stdout: i === 0 ? flood : 'written=OPENCLAW_SKIP_BROWSER_CONTROL_SERVER' } })]))
    const s = withTenantEnv({}, { '*': SECRETS['*'] })
    const results = await runFleet(names.map(server), context(s, fakes))
    jest.clearAllMocks()
    setOutputs(results)
    const json = core.setOutput.mock.calls.find(([name]) => name === 'results')![1] as string
    expect(Buffer.byteLength(json)).toBeLessThan(1024 * 1024)
    expect((JSON.parse(json) as Array<{ name: string }>).map(e => e.name)).toEqual(names)
    const rows = renderSummary(results, s, {})
      .split('\n')
      .filter(l => l.startsWith('| t-'))
    expect(rows).toHaveLength(20)
  })

  it('restarts nothing when the image runs already and no value changed (unchanged)', async () => {
    const fake = new FakeServer({ ...sameImage, 'write-env': UNCHANGED_ENV })
    const result = await runServer(server('a'), context(withTenantEnv({ image: '' }), { a: fake }))
    expect(result.status).toBe('unchanged')
    expect(result.changedVariables).toBeUndefined()
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'write-env', 'history', 'unlock'])
    // the image variable is not written: .env names the image already
    expect(Object.keys(written(fake.ran.find(c => c.step === 'write-env')!))).toEqual(['OPENCLAW_SKIP_BROWSER_CONTROL_SERVER', 'CLAUDE_AI_SESSION_KEY'])
    expect(result.log).toContain(`already running ${NEW} (new) and .env already has these values; nothing restarted`)
  })

  it('restarts and checks health when only a value changed, the image being the same', async () => {
    const fake = new FakeServer({ ...sameImage, 'write-env': { stdout: 'written=OPENCLAW_SKIP_BROWSER_CONTROL_SERVER' } })
    const result = await runServer(server('a'), context(withTenantEnv(), { a: fake }))
    expect(result).toMatchObject({ status: 'deployed', changedVariables: ['OPENCLAW_SKIP_BROWSER_CONTROL_SERVER'] })
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'write-env', 'up', 'health', 'prune', 'forget-env', 'history', 'unlock'])
  })

  it("puts the whole .env back (the server's copy from before the one write) when the change is unhealthy", async () => {
    const fake = new FakeServer({ ...sameImage, 'write-env': { stdout: 'written=CLAUDE_AI_SESSION_KEY' }, 'restore-env': { stdout: 'restored=yes' }, health: unhealthyFirst() })
    const result = await runServer(server('a'), context(withTenantEnv(), { a: fake }))
    expect(result).toMatchObject({ status: 'rolled-back', deployedImage: NEW, deployedImageId: 'sha256:new' })
    expect(result.changedVariables).toBeUndefined()
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'write-env', 'up', 'health', 'retag', 'restore-env', 'up', 'health', 'history', 'unlock'])
    expect(fake.ran.find(c => c.step === 'retag')!.args).toEqual(['sha256:new', NEW])
  })

  it('rotate-token: restarts the image that runs (no pull) with a token made on the server', async () => {
    const fake = new FakeServer({ preflight: onNew, 'write-env': { stdout: 'written=OPENCLAW_GATEWAY_TOKEN' } })
    const result = await runServer(server('a'), context(settings({ mode: 'rotate-token', image: '' }), { a: fake }))
    expect(result).toMatchObject({ status: 'deployed', previousImage: NEW, deployedImage: NEW, changedVariables: ['OPENCLAW_GATEWAY_TOKEN'] })
    expect(fake.steps()).toEqual(['lock', 'preflight', 'write-env', 'up', 'health', 'prune', 'forget-env', 'history', 'unlock'])
    expect(written(fake.ran.find(c => c.step === 'write-env')!)).toEqual({ OPENCLAW_GATEWAY_TOKEN: NEW_TOKEN })
    expect(result.log).toContain('token rotated: OPENCLAW_GATEWAY_TOKEN made on the server, where it stays; the gateway is healthy with it')
  })

  it('rotate-token: the old token is back when the gateway is not healthy with the new one', async () => {
    const fake = new FakeServer({ preflight: onNew, 'write-env': { stdout: 'written=OPENCLAW_GATEWAY_TOKEN' }, 'restore-env': { stdout: 'restored=yes' }, health: unhealthyFirst() })
    const result = await runServer(server('a'), context(settings({ mode: 'rotate-token', image: '' }), { a: fake }))
    expect(result.status).toBe('rolled-back')
    expect(result.error).toMatch(/not healthy within 60s; restored reg.test\/openclaw:v2, which is healthy/)
    expect(fake.steps().slice(-6)).toEqual(['retag', 'restore-env', 'up', 'health', 'history', 'unlock'])
  })

  it('rotate-token: takes the token tenant-env gives; the same token again is unchanged, with a warning', async () => {
    const token = 'a'.repeat(64)
    const fake = new FakeServer({ preflight: onNew, 'write-env': UNCHANGED_ENV })
    const result = await runServer(server('a'), context(withTenantEnv({ mode: 'rotate-token', image: '' }, { 't-a': { OPENCLAW_GATEWAY_TOKEN: token } }), { a: fake }))
    expect(written(fake.ran.find(c => c.step === 'write-env')!)).toEqual({ OPENCLAW_GATEWAY_TOKEN: token })
    expect(result.status).toBe('unchanged')
    expect(result.warnings).toEqual(['the OPENCLAW_GATEWAY_TOKEN that tenant-env gives t-a is the one its .env has already: nothing was rotated'])
  })

  it('rotate-token: changes nothing where no image of the project is on the server', async () => {
    const fake = new FakeServer({ preflight: { stdout: `${GATEWAY}image_var=${NEW}` }, inspect: { stdout: 'image_id=' } })
    const result = await runServer(server('a'), context(settings({ mode: 'rotate-token', image: '' }), { a: fake }))
    expect(result.status).toBe('failed')
    expect(result.error).toMatch(/^no image of this project is on the server, so no gateway to give a new token: deploy one first/)
    expect(fake.steps()).not.toContain('write-env')
  })

  it('no value leaves in any output: not in a command line, the log, the summary, the outputs or annotations, in no encoding', async () => {
    const values = Object.values(SECRETS).flatMap(v => Object.values(v))
    const forms = values.flatMap(v => [v, ...v.split('\n'), Buffer.from(v).toString('base64'), Buffer.from(v).toString('hex'), createHash('sha256').update(v).digest('hex')])
    const s = withTenantEnv()
    const replies = (written: string): Record<string, Reply> => ({
      ...sameImage,
      'write-env': command => (written === 'none' ? UNCHANGED_ENV(command) : { stdout: `written=${written}` }),
      'restore-env': { stdout: 'restored=yes' }
    })
    const fakes = {
      a: new FakeServer(replies('CLAUDE_AI_SESSION_KEY')),
      b: new FakeServer({ ...replies('OPENCLAW_SKIP_BROWSER_CONTROL_SERVER'), health: unhealthyFirst() }),
      c: new FakeServer({ ...replies('none'), up: { code: 3, stdout: 'error=docker compose up failed: [redacted]' } })
    }
    jest.clearAllMocks()
    const results = await runFleet(['a', 'b', 'c'].map(server), context(s, fakes))
    expect(results.map(r => r.status)).toEqual(['deployed', 'rolled-back', 'unchanged'])
    results.forEach(logServer)
    setOutputs(results)
    annotate(results)
    // (masks are how secrets are handed to the runner, which never shows them)
    const printed = [...handedToCore().filter(call => !core.setSecret.mock.calls.some(([m]) => m === call)), renderSummary(results, s, {}), JSON.stringify(results)]
    const commandLines = Object.values(fakes).flatMap(f => f.ran.flatMap(c => [c.script, ...c.args]))
    for (const form of forms) {
      expect(printed.join('\n')).not.toContain(form)
      expect(commandLines.join('\n')).not.toContain(form)
    }
    expect(printed.join('\n')).toContain('CLAUDE_AI_SESSION_KEY')
  })
})

describe('registry login before the pull', () => {
  const PASSWORD = 'ghp_pipelinesecret0123456789'
  const login = { 'registry-username': 'ci-bot', 'registry-password': PASSWORD }
  const carriesPassword = (fake: FakeServer) => fake.ran.filter(c => (c.stdin ?? '').includes(PASSWORD) || c.args.some(a => a.includes(PASSWORD)))

  it('logs in to the registry of the image being deployed, in the pull step, the password on its stdin', async () => {
    const fake = new FakeServer()
    const result = await runServer(server('a'), context(settings(login), { a: fake }))
    expect(result.status).toBe('deployed')
    const pull = fake.ran.find(c => c.step === 'pull')!
    expect(pull.args).toEqual([NEW, 'reg.test', 'ci-bot'])
    expect(pull.stdin).toBe(PASSWORD)
    expect(carriesPassword(fake)).toEqual([pull])
  })

  it('with image empty, logs in to the registry of the reference the server runs; "registry" overrides it', async () => {
    const onGhcr = { stdout: `${GATEWAY}image_var=ghcr.io/acme/openclaw:prd\ncontainer=gateway|ghcr.io/acme/openclaw:prd|sha256:old|running` }
    const fake = new FakeServer({ preflight: onGhcr })
    await runServer(server('a'), context(settings({ ...login, image: '' }), { a: fake }))
    expect(fake.ran.find(c => c.step === 'pull')!.args).toEqual(['ghcr.io/acme/openclaw:prd', 'ghcr.io', 'ci-bot'])
    const other = new FakeServer({ preflight: onGhcr })
    await runServer(server('a'), context(settings({ ...login, image: '', registry: 'mirror.example.com' }), { a: other }))
    expect(other.ran.find(c => c.step === 'pull')!.args).toEqual(['ghcr.io/acme/openclaw:prd', 'mirror.example.com', 'ci-bot'])
  })

  it("wrong credentials: failed with Docker's reason, nothing switched", async () => {
    const fake = new FakeServer({
      pull: { code: 3, stdout: 'error=docker login to reg.test as ci-bot failed: Error response from daemon: Get "https://reg.test/v2/": unauthorized: incorrect username or password' }
    })
    const result = await runServer(server('a'), context(settings(login), { a: fake }))
    expect(result).toMatchObject({ status: 'failed', failedStep: 'pull', error: expect.stringMatching(/^pull failed: docker login to reg.test as ci-bot failed: .*unauthorized/) })
    expect(fake.steps()).toEqual(['lock', 'preflight', 'pull', 'unlock'])
  })

  it('a rollback, automatic or by mode, needs no login', async () => {
    let healthChecks = 0
    // the new image is not healthy, the restored one is
    const sick = new FakeServer({
      health: () => (healthChecks++ === 0 ? { code: 5, stdout: 'health=failed\nhttp=500\ncontainers=gateway:running:0:0:unless-stopped:ok' } : (DEFAULT_REPLIES.health as Partial<CommandResult>))
    })
    const rolled = await runServer(server('a'), context(settings(login), { a: sick }))
    expect(rolled.status).toBe('rolled-back')
    expect(carriesPassword(sick).map(c => c.step)).toEqual(['pull'])

    const byMode = new FakeServer({
      preflight: { stdout: `${GATEWAY}image_var=${NEW}\ncontainer=gateway|${NEW}|sha256:new|running` },
      'read-rollback': { stdout: `image=${OLD}\nimage_id=sha256:old\ntag=t` }
    })
    expect((await runServer(server('a'), context(settings({ ...login, mode: 'rollback', image: '' }), { a: byMode }))).status).toBe('deployed')
    expect(carriesPassword(byMode)).toEqual([])
  })
})
