// backup-openclaw.sh and the action share one deploy lock: the script carries a generated copy of
// the lock's scripts (src/remote/script-lock.ts), checked here to be current, and runs through a
// real bash on scratch folders against the action's own takeLock and releaseLock.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import * as commands from '../../src/remote/commands.js'
import { LOCK_BLOCK_BEGIN, LOCK_BLOCK_END, lockBlock, withLockBlock } from '../../src/remote/script-lock.js'
import { run } from './fixtures/remote.js'
import { tempDirs } from './fixtures/temp.js'

const root = resolve(dirname(new URL(import.meta.url).pathname), '..', '..')
const backupScript = join(root, 'scripts', 'deployment', 'backup-openclaw.sh')
const tempDir = tempDirs()
const realTar = spawnSync('bash', ['-c', 'command -v tar'], { encoding: 'utf8' }).stdout.trim()
const now = () => Math.floor(Date.now() / 1000)
const HOLDER = /^backup-openclaw\.sh (backup|restore) by \S+ on \S+ pid \d+ since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ token=([0-9a-f]{32})$/
/** The same holder as another run sees it: without its token. */
const SEEN = /^backup-openclaw\.sh (backup|restore) by \S+ on \S+ pid \d+ since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/

describe('the lock functions in backup-openclaw.sh', () => {
  it('are the ones generated from src/remote/commands.ts', () => {
    const script = readFileSync(backupScript, 'utf8')
    try {
      expect(script).toBe(withLockBlock(script))
    } catch (error) {
      ;(error as Error).message =
        `scripts/deployment/backup-openclaw.sh carries a stale copy of the deploy lock: run 'node scripts/dev/gen-backup-lock.mjs' (npm run package runs it) and commit the script.\n` +
        (error as Error).message
      throw error
    }
    expect(script).toContain(lockBlock())
  })

  it('are replaced between the markers only, and a script without them is refused', () => {
    const stale = `#!/usr/bin/env bash\nset -euo pipefail\n${LOCK_BLOCK_BEGIN}\nold() { :; }\n${LOCK_BLOCK_END}\nmain "$@"\n`
    expect(withLockBlock(stale)).toBe(`#!/usr/bin/env bash\nset -euo pipefail\n${lockBlock()}main "$@"\n`)
    expect(() => withLockBlock('#!/usr/bin/env bash\n')).toThrow(LOCK_BLOCK_BEGIN)
  })
})

let home: string
let project: string
let state: string
/** Where the tar shim says it started and waits to be let go. */
let shim: string
const children: ChildProcess[] = []
const note = () => readFileSync(join(state, 'lock', 'holder'), 'utf8')
const archives = () => (existsSync(join(home, 'backups', 'p')) ? readdirSync(join(home, 'backups', 'p')).filter(f => f.endsWith('.tar.gz')) : [])

beforeEach(() => {
  home = tempDir('openclaw-backup-lock-')
  project = join(home, 'p')
  state = commands.stateDir(project)
  mkdirSync(join(project, 'config'), { recursive: true })
  writeFileSync(join(project, '.env'), 'OPENCLAW_IMAGE=registry.local/openclaw:1\nOPENCLAW_GATEWAY_TOKEN=secret\n')
  writeFileSync(join(project, 'docker-compose.yml'), 'services: {}\n')
  writeFileSync(join(project, 'config', 'openclaw.json'), '{}\n')
  // A tar that, when it writes an archive, says so and waits until the test lets it go: the backup is then mid-way.
  shim = join(home, 'shim')
  mkdirSync(shim)
  writeFileSync(
    join(shim, 'tar'),
    `#!/bin/sh\ncase " $* " in *" -czf "*) [ -e "${shim}/pass" ] || { touch "${shim}/started"; while [ ! -e "${shim}/go" ]; do sleep 0.05; done; } ;; esac\nexec ${realTar} "$@"\n`
  )
  chmodSync(join(shim, 'tar'), 0o755)
})

afterEach(() => {
  // a test that failed mid-way leaves no paused backup behind
  resume()
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
})

interface Backup {
  child: ChildProcess
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

/** Starts backup-openclaw.sh; `pause` holds it when it starts writing an archive, until `resume()`. */
function startBackup(args: string[], { pause = false, env = {} }: { pause?: boolean; env?: NodeJS.ProcessEnv } = {}): Backup {
  if (!pause) writeFileSync(join(shim, 'pass'), '')
  const child = spawn('bash', [backupScript, ...args], {
    env: { ...process.env, HOME: home, PATH: `${shim}:${process.env.PATH}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  // 'exit', not 'close': a killed backup's children may keep its pipes open a little longer
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(settle =>
    child.on('exit', (code, signal) => setTimeout(() => settle({ code, signal, stdout, stderr }), 100))
  )
  return { child, done }
}

const backup = (args: string[], options?: { env?: NodeJS.ProcessEnv }) => startBackup(args, options).done
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** Waits until the paused backup is writing its archive; a backup that ended instead fails the test with its output. */
async function paused({ child, done }: Backup): Promise<void> {
  for (let i = 0; i < 60 && !existsSync(join(shim, 'started')); i++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the backup ended before it archived: ${JSON.stringify(await done)}`)
    await sleep(50)
  }
  expect(existsSync(join(shim, 'started'))).toBe(true)
}
const resume = () => writeFileSync(join(shim, 'go'), '')
/** Resets the tar shim for the next backup of the same test. */
const rearm = () => ['pass', 'started', 'go'].forEach(f => rmSync(join(shim, f), { force: true }))

describe('a backup and a deploy', () => {
  it('do not run together: a deploy that comes during a backup is refused, naming it and its lease; then the backup gives the lock back', async () => {
    const running = startBackup([project], { pause: true })
    await paused(running)
    const deploy = run(commands.takeLock(project, 'run 1 token=aaa', 0, 40))
    expect(deploy.code).toBe(commands.EXIT_CODE.lockHeld)
    expect(deploy.facts.get('holder')![0]).toMatch(SEEN)
    expect(deploy.facts.get('holder')![0]).toMatch(/^backup-openclaw\.sh backup by /)
    const expiresIn = Number(deploy.facts.get('expires_in')![0])
    expect(expiresIn).toBeGreaterThan(100)
    expect(expiresIn).toBeLessThanOrEqual(120)
    resume()
    const r = await running.done
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/backed up .* to .*\.tar\.gz/)
    expect(existsSync(join(state, 'lock'))).toBe(false)
    expect(run(commands.takeLock(project, 'run 1 token=aaa', 0, 40)).code).toBe(0)
  })

  it("do not run together: a backup waits --lock-wait seconds for a deploy's lock, says who holds it, then fails and changes nothing", async () => {
    expect(run(commands.takeLock(project, 'run 1 token=aaa', 0, 40)).code).toBe(0)
    const before = readFileSync(join(state, 'lock', 'holder'), 'utf8')
    const started = Date.now()
    const r = await backup(['--lock-wait', '2', project])
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    expect(r.stderr).toContain(`backup-openclaw.sh: a deploy holds the lock of ${project} (held by: run 1); waiting up to 2s for it`)
    expect(r.stderr).toContain(`backup-openclaw.sh: error: a deploy holds the lock of ${project} (held by: run 1); try again once it has finished`)
    expect(r.code).toBe(1)
    expect(archives()).toEqual([])
    // its release did not touch the deploy's lock
    expect(note()).toBe(before)
  })

  it('run one after the other: a waiting backup starts as soon as the deploy releases its lock', async () => {
    expect(run(commands.takeLock(project, 'run 1 token=aaa', 0, 40)).code).toBe(0)
    const waiting = backup(['--lock-wait', '20', project])
    await sleep(1500)
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['yes'])
    const r = await waiting
    expect(r.code).toBe(0)
    expect(archives()).toHaveLength(1)
    expect(existsSync(join(state, 'lock'))).toBe(false)
  })

  it("a lock the backup holds is released only with its token: the action's release of another token leaves it", async () => {
    const running = startBackup([project], { pause: true })
    await paused(running)
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['not-ours'])
    expect(run(commands.releaseLock(project, '')).facts.get('released')).toEqual(['not-ours'])
    expect(note()).toMatch(/^backup-openclaw\.sh backup by .* token=[0-9a-f]{32}\nexpires=\d+\n$/)
    resume()
    expect((await running.done).code).toBe(0)
    expect(existsSync(join(state, 'lock'))).toBe(false)
  })

  it('a backup killed with SIGKILL leaves a lock that expires: the action takes it over, and the dead backup’s token releases nothing', async () => {
    const running = startBackup([project], { pause: true, env: { OPENCLAW_BACKUP_LOCK_LEASE: '3', OPENCLAW_BACKUP_LOCK_RENEW: '1' } })
    await paused(running)
    const token = HOLDER.exec(note().split('\n')[0]!)![2]!
    // while it lived, its lease was renewed
    await sleep(2500)
    expect(run(commands.takeLock(project, 'run 2 token=bbb', 0, 40)).code).toBe(commands.EXIT_CODE.lockHeld)
    running.child.kill('SIGKILL')
    expect((await running.done).signal).toBe('SIGKILL')
    expect(note()).toMatch(/\nexpires=\d+\n$/)
    const started = Date.now()
    const deploy = run(commands.takeLock(project, 'run 2 token=bbb', 10, 40))
    expect(deploy.code).toBe(0)
    expect(deploy.facts.get('took_over')![0]).toMatch(SEEN)
    // within its lease (3 s) and one renewal (1 s) of the kill
    expect(Date.now() - started).toBeLessThan(6000)
    expect(run(commands.releaseLock(project, token)).facts.get('released')).toEqual(['not-ours'])
    expect(note()).toMatch(/^run 2 token=bbb\n/)
    resume() // the orphaned tar finishes
  }, 20_000)

  it('a backup stopped with SIGTERM releases its lock', async () => {
    const running = startBackup([project], { pause: true })
    await paused(running)
    expect(existsSync(join(state, 'lock'))).toBe(true)
    running.child.kill('SIGTERM')
    await running.done
    expect(existsSync(join(state, 'lock'))).toBe(false)
    resume()
  })

  it('a backup whose lock a deploy took over (it stalled past its lease) keeps no archive and leaves the new lock', async () => {
    const running = startBackup([project], { pause: true, env: { OPENCLAW_BACKUP_LOCK_LEASE: '600', OPENCLAW_BACKUP_LOCK_RENEW: '300' } })
    await paused(running)
    // as if its lease had run out while it stalled
    writeFileSync(join(state, 'lock', 'holder'), note().replace(/expires=\d+/, `expires=${now() - 1}`))
    expect(run(commands.takeLock(project, 'run 2 token=bbb', 0, 40)).code).toBe(0)
    resume()
    const r = await running.done
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`a deploy took over the lock of ${project} while it was being archived (held by: run 2)`)
    expect(r.stderr).toContain('no archive kept; run the backup again')
    expect(archives()).toEqual([])
    expect(note()).toMatch(/^run 2 token=bbb\n/)
  })
})

describe('a restore and a deploy', () => {
  it("do not run together: a restore refuses a deploy's lock and changes nothing; its own lock keeps a deploy out and is released", async () => {
    expect((await backup([project])).code).toBe(0)
    const [archive] = archives()
    writeFileSync(join(project, '.env'), 'OPENCLAW_IMAGE=registry.local/openclaw:2\n')

    expect(run(commands.takeLock(project, 'run 1 token=aaa', 0, 40)).code).toBe(0)
    const refused = await backup(['restore', '--lock-wait', '0', archive!, project])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`a deploy holds the lock of ${project} (held by: run 1); try again once it has finished`)
    expect(readFileSync(join(project, '.env'), 'utf8')).toBe('OPENCLAW_IMAGE=registry.local/openclaw:2\n')
    expect(archives()).toHaveLength(1)
    expect(run(commands.releaseLock(project, 'aaa')).facts.get('released')).toEqual(['yes'])

    rearm()
    const restoring = startBackup(['restore', archive!, project], { pause: true })
    await paused(restoring) // archiving the current state first
    const deploy = run(commands.takeLock(project, 'run 2 token=bbb', 0, 40))
    expect(deploy.code).toBe(commands.EXIT_CODE.lockHeld)
    expect(deploy.facts.get('holder')![0]).toMatch(/^backup-openclaw\.sh restore by /)
    resume()
    const r = await restoring.done
    expect(r.code).toBe(0)
    expect(readFileSync(join(project, '.env'), 'utf8')).toContain('OPENCLAW_IMAGE=registry.local/openclaw:1\n')
    expect(existsSync(join(state, 'lock'))).toBe(false)
  })
})
