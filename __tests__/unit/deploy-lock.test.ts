// The deploy lock's scripts run through a real bash on a scratch folder, the way a server runs
// them: taking, waiting, expiry and takeover, renewal with each step, release, and races.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import * as commands from '../../src/remote/commands.js'
import { run, runAsync } from './fixtures/remote.js'

let project: string
let state: string
const note = () => readFileSync(join(state, 'lock', 'holder'), 'utf8')
const now = () => Math.floor(Date.now() / 1000)

/** A step that leaves a mark, to see whether it ran. */
const mark = (file: string): commands.RemoteCommand => ({ step: 'mark', args: [file], script: 'echo ran > "$1"; echo marked=yes' })

beforeEach(() => {
  project = mkdtempSync(join(tmpdir(), 'openclaw-lock-'))
  state = commands.stateDir(project)
})
afterEach(() => rmSync(project, { recursive: true, force: true }))

describe('taking the lock', () => {
  it('creates the lock with a note naming the holder and when its lease ends', () => {
    const r = run(commands.takeLock(project, 'run 1 token=aaa', 0, 40))
    expect(r.code).toBe(0)
    expect(r.facts.get('locked')).toEqual(['yes'])
    const [holder, expires] = note().split('\n')
    expect(holder).toBe('run 1 token=aaa')
    expect(Number(expires!.replace('expires=', '')) - now()).toBeGreaterThanOrEqual(39)
    expect(Number(expires!.replace('expires=', '')) - now()).toBeLessThanOrEqual(40)
  })

  it('keeps a holder text on one line, so it cannot forge the expiry', () => {
    expect(run(commands.takeLock(project, 'evil\nexpires=0 token=bbb', 0, 40)).code).toBe(0)
    expect(note().split('\n')).toEqual(['evil expires=0 token=bbb', expect.stringMatching(/^expires=\d+$/), ''])
    const other = run(commands.takeLock(project, 'run 2 token=ccc', 0, 40))
    expect(other.code).toBe(4)
  })

  it('reports a live holder and the seconds left on its lease after waiting', () => {
    run(commands.takeLock(project, 'run 1 token=aaa', 0, 100))
    const started = Date.now()
    const r = run(commands.takeLock(project, 'run 2 token=bbb', 2, 40))
    expect(r.code).toBe(4)
    // bash counts whole seconds from its start, so a 2 s wait lasts between 1 and 2 s
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    // the holder as another run sees it: without its token, which only the holder's own steps need
    expect(r.facts.get('holder')).toEqual(['run 1'])
    expect(Number(r.facts.get('expires_in')![0])).toBeGreaterThan(90)
    expect(note()).toMatch(/^run 1 token=aaa\n/)
  })

  it('takes over a lock whose lease has expired and names the old holder', () => {
    mkdirSync(join(state, 'lock'), { recursive: true })
    writeFileSync(join(state, 'lock', 'holder'), `killed run token=old\nexpires=${now() - 12}\n`)
    const r = run(commands.takeLock(project, 'run 2 token=new', 0, 40))
    expect(r.code).toBe(0)
    expect(r.facts.get('took_over')).toEqual(['killed run'])
    expect(Number(r.facts.get('expired_for')![0])).toBeGreaterThanOrEqual(12)
    expect(note()).toMatch(/^run 2 token=new\nexpires=\d+\n$/)
  })

  it('keeps the old meaning of a lock without an expiry (older versions of the action or of backup-openclaw.sh): held until removed', () => {
    mkdirSync(join(state, 'lock'), { recursive: true })
    writeFileSync(join(state, 'lock', 'holder'), 'run 99 by alice\n')
    utimesSync(join(state, 'lock'), new Date(0), new Date(0))
    const r = run(commands.takeLock(project, 'run 2 token=new', 1, 40))
    expect(r.code).toBe(4)
    expect(r.facts.get('holder')).toEqual(['run 99 by alice'])
    expect(r.facts.get('expires_in')).toEqual([''])
    expect(note()).toBe('run 99 by alice\n')
  })

  it('takes over a lock folder left without a note for over a minute, not a fresh one', () => {
    mkdirSync(join(state, 'lock'), { recursive: true })
    expect(run(commands.takeLock(project, 'run 2 token=new', 0, 40)).code).toBe(4)
    const old = new Date(Date.now() - 120_000)
    utimesSync(join(state, 'lock'), old, old)
    const r = run(commands.takeLock(project, 'run 2 token=new', 0, 40))
    expect(r.code).toBe(0)
    expect(r.facts.get('took_over')![0]).toMatch(/died while taking the lock/)
  })

  it.each([
    ['a free lock', false],
    ['an expired lock', true]
  ])('lets exactly one of 8 simultaneous runs take %s', async (_what, expired) => {
    if (expired) {
      mkdirSync(join(state, 'lock'), { recursive: true })
      writeFileSync(join(state, 'lock', 'holder'), `dead token=old\nexpires=${now() - 1}\n`)
    }
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => runAsync(commands.takeLock(project, `run ${i} token=t${i}`, 0, 40))))
    const winners = runs.flatMap((r, i) => (r.code === 0 ? [i] : []))
    // every loser is told who holds the lock; none fails (the state folder made by a rival included)
    expect(runs.filter(r => r.code !== 0).map(r => [r.code, r.facts.get('error')])).toEqual(Array.from({ length: 7 }, () => [4, undefined]))
    expect(winners).toHaveLength(1)
    expect(note()).toMatch(new RegExp(`^run ${winners[0]} token=t${winners[0]}\\n`))
  })

  it('reports a lock folder it cannot create as that error, not as a holder', () => {
    mkdirSync(state, { recursive: true })
    writeFileSync(join(state, 'lock.guard'), '')
    chmodSync(join(state, 'lock.guard'), 0o666)
    chmodSync(state, 0o555)
    chmodSync(project, 0o755)
    // root may write anywhere: run as nobody, as a deploy user would be
    const asUser = process.getuid?.() === 0 ? 'setpriv --reuid=65534 --regid=65534 --clear-groups ' : ''
    const r = run(commands.takeLock(project, 'run 1 token=aaa', 5, 40), 30, asUser)
    expect(r.code).toBe(3)
    expect(r.facts.get('error')).toEqual([`cannot create the lock ${state}/lock: cannot create directory '${state}/lock': Permission denied`])
    expect(r.facts.has('holder')).toBe(false)
  })

  it('fails the lock step, and leaves no lock, when the note cannot be written', () => {
    const r = run(commands.takeLock(project, 'run 1 token=aaa', 0, 40), 30, "trap '' XFSZ; ulimit -f 0; ")
    expect(r.code).toBe(3)
    expect(r.facts.get('error')).toEqual([`cannot write the lock note ${state}/lock/holder as ${userInfo().username}`])
    expect(existsSync(join(state, 'lock'))).toBe(false)
  })
})

describe('the lease', () => {
  it('is renewed by every step for the step’s timeout, the kill after it and slack; the step keeps its stdin', () => {
    run(commands.takeLock(project, 'run 1 token=aaa', 0, 5))
    const step: commands.RemoteCommand = { step: 'echo-stdin', args: ['x'], stdin: 'hello', script: 'printf "got=%s\\n" "$(cat)"' }
    const r = run(commands.withLease(project, 'aaa', step), 100)
    expect(r.code).toBe(0)
    expect(r.facts.get('got')).toEqual(['hello'])
    const expires = Number(/expires=(\d+)/.exec(note())![1])
    expect(expires - now()).toBeGreaterThanOrEqual(100 + 5 + 30 - 1)
    expect(note()).toMatch(/^run 1 token=aaa\n/)
  })

  it('runs nothing and says who holds the lock once another run took it over', () => {
    run(commands.takeLock(project, 'run 1 token=aaa', 0, 5))
    writeFileSync(join(state, 'lock', 'holder'), `run 1 token=aaa\nexpires=${now() - 1}\n`)
    expect(run(commands.takeLock(project, 'run 2 token=bbb', 0, 40)).code).toBe(0)
    const r = run(commands.withLease(project, 'aaa', mark(join(project, 'marked'))))
    expect(r.code).toBe(6)
    expect(r.facts.get('lock_lost')).toEqual(['run 2'])
    expect(existsSync(join(project, 'marked'))).toBe(false)
    expect(note()).toMatch(/^run 2 token=bbb\n/)
  })

  it('a step under a held lease runs and reports its own exit code', () => {
    run(commands.takeLock(project, 'run 1 token=aaa', 0, 5))
    const failing: commands.RemoteCommand = { step: 'boom', args: [], script: 'echo error=boom; exit 3' }
    expect(run(commands.withLease(project, 'aaa', failing)).code).toBe(3)
    expect(run(commands.withLease(project, 'aaa', mark(join(project, 'marked')))).code).toBe(0)
    expect(readFileSync(join(project, 'marked'), 'utf8')).toBe('ran\n')
  })
})

describe('releasing the lock', () => {
  it('removes only a lock this run holds', () => {
    run(commands.takeLock(project, 'run 1 token=aaa', 0, 40))
    expect(run(commands.releaseLock(project, 'bbb')).facts.get('released')).toEqual(['not-ours'])
    expect(run(commands.releaseLock(project, '')).facts.get('released')).toEqual(['not-ours'])
    expect(existsSync(join(state, 'lock'))).toBe(true)
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['yes'])
    expect(existsSync(join(state, 'lock'))).toBe(false)
    expect(run(commands.takeLock(project, 'run 2 token=bbb', 0, 40)).code).toBe(0)
  })

  it("lets the next deploy take the lock at once after a killed run's post step released it, and leaves another run's lock", () => {
    // The killed run renewed its lease for a long step (a pull under command-timeout 600) just before SIGKILL.
    run(commands.takeLock(project, 'killed run token=aaa', 0))
    expect(run(commands.withLease(project, 'aaa', mark(join(project, 'marked'))), 600).code).toBe(0)
    expect(run(commands.takeLock(project, 'next run token=ccc', 0)).code).toBe(4)
    // its post step (same token) releases it; the next deploy needs no wait and takes over nothing
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['yes'])
    const started = Date.now()
    const next = run(commands.takeLock(project, 'next run token=ccc', 0))
    expect(next.code).toBe(0)
    expect(next.facts.get('took_over')).toBeUndefined()
    expect(Date.now() - started).toBeLessThan(2000)
    // the killed run's token does not match the next run's lock: a late post step leaves it alone
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['not-ours'])
    expect(note()).toMatch(/^next run token=ccc\n/)
  })

  it('finds nothing to release, and creates nothing, where no lock or no state folder exists', () => {
    expect(run(commands.releaseLock(project, 'aaa'))).toMatchObject({ code: 0, facts: new Map([['released', ['not-ours']]]) })
    expect(existsSync(state)).toBe(false)
    mkdirSync(state)
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['not-ours'])
    expect(existsSync(join(state, 'lock.guard'))).toBe(false)
  })
})

describe('the switch lock', () => {
  /** Holds switch.lock from another process (a step left running by a lost connection) for `seconds`. */
  function holdSwitchLock(seconds: number): Promise<void> {
    mkdirSync(state, { recursive: true })
    const child = spawn('flock', [join(state, 'switch.lock'), 'sleep', String(seconds)], { stdio: 'ignore' })
    return new Promise(resolve => child.on('close', () => resolve()))
  }
  const waitUntilHeld = () => {
    for (let i = 0; i < 100 && spawnSync('flock', ['-n', join(state, 'switch.lock'), 'true']).status === 0; i++) spawnSync('sleep', ['0.05'])
  }

  it('makes a switching step wait for a step left running on the server, then run', async () => {
    const orphan = holdSwitchLock(2)
    waitUntilHeld()
    const started = Date.now()
    const step = commands.exclusive(project, mark(join(project, 'marked')), 10)
    const r = await runAsync(step, commands.exclusiveTimeout(10))
    expect(r.code).toBe(0)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
    expect(readFileSync(join(project, 'marked'), 'utf8')).toBe('ran\n')
    await orphan
  })

  it('gives up after the bounded wait with a message naming the lock, without running the step', async () => {
    const orphan = holdSwitchLock(8)
    waitUntilHeld()
    // a 0 s step waits 0 + 5 (KILL) + 1 s for the lock
    const r = await runAsync(commands.exclusive(project, mark(join(project, 'marked')), 0), 30)
    expect(r.code).toBe(3)
    expect(r.facts.get('error')).toEqual([`another command that switches this server (left running by a lost connection?) still held ${state}/switch.lock after 6s`])
    expect(existsSync(join(project, 'marked'))).toBe(false)
    await orphan
  }, 15_000)

  it('bounds the step itself once it holds the lock, and renews the lease first when under the deploy lock', () => {
    run(commands.takeLock(project, 'run 1 token=aaa', 0, 5))
    const slow: commands.RemoteCommand = { step: 'slow', args: [], script: 'sleep 5; echo done=yes' }
    const started = Date.now()
    const r = run(commands.withLease(project, 'aaa', commands.exclusive(project, slow, 1)), commands.exclusiveTimeout(1))
    expect(r.code).toBe(124)
    expect(Date.now() - started).toBeLessThan(4000)
    const expires = Number(/expires=(\d+)/.exec(note())![1])
    expect(expires - now()).toBeGreaterThanOrEqual(commands.exclusiveTimeout(1) + 5 + 30 - 2)
    // the lock is free again for the next step
    expect(run(commands.exclusive(project, mark(join(project, 'marked')), 5), commands.exclusiveTimeout(5)).code).toBe(0)
  })
})
