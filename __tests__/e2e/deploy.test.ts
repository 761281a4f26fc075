// The deploy engine against the real fleet: sshd + dockerd per server, images from the local
// registry. Tests run in order and share the fleet; each one leaves every server it touched healthy
// on a known image with no lock (checked after each test).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from '@jest/globals'
import {
  actionKeyInputs,
  baselineEnvOf,
  envOf,
  healthOf,
  readFleet,
  resultsOf,
  statusOf,
  rig,
  runAction,
  scratchDir,
  server,
  serverExec,
  writeRegistry,
  type ActionRun,
  type Fleet
} from '../rig/fleet.js'

const SIX = ['s1', 's2', 's3', 's4', 's5', 's6']
const TENANT: Record<string, string> = { s1: 'acme', s2: 'acme', s3: 'globex', s4: 'globex', s5: 'initech', s6: 'initech' }

let fleet: Fleet
let registryFile: string
let touched = new Set<string>()

/** Deploys through the bundled action with the rig's key and known_hosts. */
function deploy(inputs: Record<string, string>, opts: Parameters<typeof runAction>[1] = {}): Promise<ActionRun> {
  return runAction({ 'servers-file': registryFile, ...actionKeyInputs(fleet), ...inputs }, opts)
}

function lockExists(name: string): boolean {
  return existsSync(join(server(fleet, name).path, '.openclaw-deploy', 'lock'))
}

function historyOf(name: string): string {
  const file = join(server(fleet, name).path, '.openclaw-deploy', 'history.log')
  return existsSync(file) ? readFileSync(file, 'utf8') : ''
}

/**
 * A process on server NAME that holds its switch.lock for `seconds`, as a command left running by a
 * lost connection does: `holding` once it has the lock, `ended` (when) once it let go.
 */
function holdSwitchLock(name: string, seconds: number): { holding: Promise<void>; ended: Promise<number> } {
  const state = join(server(fleet, name).path, '.openclaw-deploy')
  const ready = serverExec(name, `mkdir -p ${state} && touch ${state}/switch.lock && chown deploy ${state} ${state}/switch.lock`)
  const ended = ready.then(() => serverExec(name, `flock ${state}/switch.lock sleep ${seconds}`)).then(() => Date.now())
  const holding = ready.then(async () => {
    for (let tries = 0; (await serverExec(name, `flock -n ${state}/switch.lock true`)).code === 0; tries++) {
      if (tries >= 100) throw new Error(`${name}: the process meant to hold ${state}/switch.lock did not take it within 100 tries`)
      await new Promise(r => setTimeout(r, 100))
    }
  })
  return { holding, ended }
}

/** Waits until the action prints a line containing `text`, then calls `then`. */
function when(text: string, then: () => void) {
  return {
    onSpawn: (child: import('node:child_process').ChildProcess) => {
      let seen = ''
      let done = false
      child.stdout?.on('data', (d: Buffer | string) => {
        seen += d.toString()
        if (!done && seen.includes(text)) {
          done = true
          then()
        }
      })
    }
  }
}

beforeAll(async () => {
  fleet = readFleet()
  expect(fleet.servers.length).toBeGreaterThanOrEqual(6)
  registryFile = writeRegistry(fleet, SIX, s => ({ tenant: TENANT[s.name], region: Number(s.name.slice(1)) % 2 ? 'eu-west' : 'us-east' }))
  await rig('reset', 'all')
})

afterEach(async () => {
  await rig('registry', 'start')
  const problems: string[] = []
  for (const name of touched) {
    await rig('mend', name)
    const health = await healthOf(name)
    if (!['v1', 'v2'].includes(health ?? '')) problems.push(`${name} is not healthy on a known image (health: ${health})`)
    if (lockExists(name)) problems.push(`${name} still has a deploy lock`)
    // One test's mess must not spill into the next: put the server back on its baseline.
    if (!['v1', 'v2'].includes(health ?? '') || lockExists(name)) await rig('reset', name)
  }
  touched = new Set()
  expect(problems).toEqual([])
})

describe('deploy engine on the rig', () => {
  it('deploys v1 → v2 to 6 servers in 3 tenants, each then serving v2', async () => {
    SIX.forEach(n => touched.add(n))
    const run = await deploy({ image: fleet.images.v2, 'max-parallel': '6' })
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual(Object.fromEntries(SIX.map(n => [n, 'deployed'])))
    for (const r of resultsOf(run)) {
      expect(r).toMatchObject({ tenant: TENANT[r.name], previousImage: fleet.images.v1, deployedImage: fleet.images.v2, error: null })
    }
    expect(run.outputs).toMatchObject({ deployed: '6', failed: '0', 'rolled-back': '0', skipped: '0' })
    for (const name of SIX) {
      expect(await healthOf(name)).toBe('v2')
      // Only the image line of .env changed.
      expect(envOf(server(fleet, name))).toBe(baselineEnvOf(server(fleet, name)).replace(fleet.images.v1, fleet.images.v2))
      expect(historyOf(name)).toMatch(new RegExp(`deployed\\t${fleet.images.v1} -> ${fleet.images.v2}`))
    }
    expect(run.summary.match(/^\| (acme|globex|initech) \| s\d /gm)).toHaveLength(6)
  })

  it('deploying the image a server already runs restarts nothing', async () => {
    touched.add('s2')
    const started = () => serverExec('s2', 'docker inspect --format "{{.State.StartedAt}}" $(docker compose ps -q openclaw-gateway)')
    const before = (await started()).stdout
    const run = await deploy({ image: fleet.images.v2, servers: 's2' })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s2: 'unchanged' })
    expect((await started()).stdout).toBe(before)
  })

  it('rolls back the two servers given a broken image; the others are untouched', async () => {
    ;['s1', 's3', 's2'].forEach(n => touched.add(n))
    const untouchedEnv = envOf(server(fleet, 's2'))
    const run = await deploy({ image: fleet.images.broken, servers: 's1,s3', 'health-timeout': '8' })
    expect(run.code).toBe(1)
    expect(statusOf(run)).toEqual({ s1: 'rolled-back', s3: 'rolled-back' })
    for (const r of resultsOf(run)) {
      expect(r.deployedImage).toBe(fleet.images.v2)
      expect(r.error).toMatch(/not healthy within 8s: .* answered HTTP 404.*restored .*:v2, which is healthy/)
    }
    expect(await healthOf('s1')).toBe('v2')
    expect(await healthOf('s3')).toBe('v2')
    expect(envOf(server(fleet, 's1'))).toContain(`OPENCLAW_IMAGE=${fleet.images.v2}\n`)
    expect(envOf(server(fleet, 's2'))).toBe(untouchedEnv)
    expect(run.stdout).toContain('::error title=s1 (acme)%3A rolled-back::health failed: not healthy within 8s')
    expect(run.stdout).toMatch(/::error::2 of 2 servers did not succeed/)
  })

  it('refuses a server whose host key is wrong before any command runs', async () => {
    touched.add('s4')
    const before = historyOf('s4')
    const file = writeRegistry(fleet, ['s4'], { hostKey: server(fleet, 's5').hostKey })
    const run = await runAction({ 'servers-file': file, 'ssh-private-key': actionKeyInputs(fleet)['ssh-private-key'], image: fleet.images.v1 })
    expect(run.code).toBe(1)
    const [result] = resultsOf(run)
    expect(result).toMatchObject({ name: 's4', status: 'failed' })
    expect(result!.error).toMatch(/refused before any command ran: HOST KEY MISMATCH/)
    expect(historyOf('s4')).toBe(before)
    expect(await healthOf('s4')).toBe('v2')
  })

  it('fails clearly with a key the server does not authorise', async () => {
    touched.add('s4')
    const dir = scratchDir('badkey')
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')])
    const run = await deploy({ image: fleet.images.v1, servers: 's4', 'ssh-private-key': readFileSync(join(dir, 'id'), 'utf8') })
    expect(run.code).toBe(1)
    expect(resultsOf(run)[0]!.error).toMatch(/deploy@10\.200\.0\.\d+:22 did not accept the SSH key/)
  })

  it('reports a server cut off before the deploy as unreachable within connect-timeout', async () => {
    touched.add('s4')
    await rig('cut', 's4')
    const run = await deploy({ image: fleet.images.v1, servers: 's4,s5', 'connect-timeout': '4' })
    expect(statusOf(run)).toEqual({ s4: 'unreachable', s5: 'deployed' })
    expect(resultsOf(run)[0]!.error).toMatch(/cannot connect to 10\.200\.0\.\d+:22 after \d+ attempts? within 4s/)
    expect(run.durationMs).toBeLessThan(60_000)
    touched.add('s5')
  })

  it('leaves no lock and a healthy server when the link drops during the health check', async () => {
    touched.add('s5')
    let cut: Promise<unknown> = Promise.resolve()
    let mended: Promise<unknown> = Promise.resolve()
    const run = await deploy(
      { image: fleet.images.v2, servers: 's5', 'connect-timeout': '40', 'health-timeout': '30' },
      {
        onSpawn: child => {
          when('[s5] health check', () => (cut = rig('cut', 's5'))).onSpawn(child)
          // the link comes back once the action has found it dead (keepalives: 15-20 s), not after a
          // fixed time that a slow machine could make shorter than that
          when('[s5] reconnecting', () => (mended = cut.then(() => rig('mend', 's5')))).onSpawn(child)
        }
      }
    )
    await cut
    await mended
    expect(run.timedOut).toBe(false)
    // Keepalives notice the dead link, the action reconnects once the link is back and rolls back.
    expect(statusOf(run)).toEqual({ s5: 'rolled-back' })
    expect(resultsOf(run)[0]!.error).toMatch(/reconnected and restored .*:v1, which is healthy/)
    expect(await healthOf('s5')).toBe('v1')
  })

  it('waits for a switching command still running on the server (switch.lock) before changing anything', async () => {
    touched.add('s5')
    const target = (await healthOf('s5')) === 'v1' ? 'v2' : 'v1'
    // What a compose up left running by a lost connection looks like: a process holding switch.lock.
    const orphan = holdSwitchLock('s5', 8)
    await orphan.holding
    const run = await deploy({ image: fleet.images[target], servers: 's5' })
    const finished = Date.now()
    const orphanEnded = await orphan.ended
    expect(statusOf(run)).toEqual({ s5: 'deployed' })
    expect(finished).toBeGreaterThan(orphanEnded)
    expect(await healthOf('s5')).toBe(target)
  })

  it('rolls back with the registry stopped mid-deploy', async () => {
    touched.add('s6')
    const run = await deploy(
      { image: fleet.images.broken, servers: 's6', 'health-timeout': '6' },
      when('[s6] switching', () => void rig('registry', 'stop'))
    )
    expect(statusOf(run)).toEqual({ s6: 'rolled-back' })
    expect(await healthOf('s6')).toBe('v2')
  })

  it('reports a held lock with its holder, and waits for it within lock-timeout', async () => {
    touched.add('s2')
    const state = join(server(fleet, 's2').path, '.openclaw-deploy')
    await serverExec('s2', `mkdir -p ${state}/lock && echo "run 99 by alice" > ${state}/lock/holder && chown -R deploy ${state}`)
    const run = await deploy({ image: fleet.images.v1, servers: 's2', 'lock-timeout': '2' })
    expect(statusOf(run)).toEqual({ s2: 'locked' })
    expect(resultsOf(run)[0]!.error).toMatch(/another deploy holds the lock \(run 99 by alice\); waited 2s \(lock-timeout\)/)
    expect(await healthOf('s2')).toBe('v2')
    // The holder finishes 3 s later: a run willing to wait gets the server.
    setTimeout(() => void serverExec('s2', `rm -rf ${state}/lock`), 3000)
    const waited = await deploy({ image: fleet.images.v1, servers: 's2', 'lock-timeout': '30' })
    expect(statusOf(waited)).toEqual({ s2: 'deployed' })
  })

  it('lets only one of two simultaneous runs deploy a server', async () => {
    touched.add('s3')
    const state = join(server(fleet, 's3').path, '.openclaw-deploy')
    // A command left holding switch.lock for 10 s keeps the winner on the server, holding its deploy
    // lock, for that long: the other run (lock-timeout 0) meets that lock however slowly it starts.
    const orphan = holdSwitchLock('s3', 10)
    await orphan.holding
    const [a, b] = await Promise.all([deploy({ image: fleet.images.v1, servers: 's3', 'lock-timeout': '0' }), deploy({ image: fleet.images.v1, servers: 's3', 'lock-timeout': '0' })])
    await orphan.ended
    expect([statusOf(a).s3, statusOf(b).s3].sort()).toEqual(['deployed', 'locked'])
    expect(await healthOf('s3')).toBe('v1')
    expect(existsSync(join(state, 'lock'))).toBe(false)
  })

  it("on SIGTERM starts no new server, stops or rolls back the others and releases every lock, well within GitHub's 10 s before SIGKILL", async () => {
    SIX.forEach(n => touched.add(n))
    // every server on v1, so the two first servers both have a deploy in progress when the cancel comes
    await Promise.all(SIX.map(name => rig('reset', name)))
    let signalled = 0
    const run = await deploy(
      { image: fleet.images.v2, 'max-parallel': '2', 'health-timeout': '60' },
      {
        onSpawn: child => {
          let seen = ''
          child.stdout?.on('data', (d: Buffer) => {
            seen += d.toString()
            // The cancel comes while a server that already switched is in its health check; then
            // GitHub's SIGKILL 10 s later, which the action must not need.
            if (/\[s\d\] health check/.test(seen) && !signalled) {
              signalled = Date.now()
              child.kill('SIGTERM')
              setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
            }
          })
        }
      }
    )
    expect(signalled).toBeGreaterThan(0)
    expect(run.signal).toBeNull()
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('SIGTERM received')
    const all = resultsOf(run)
    expect(all).toHaveLength(6)
    expect(all.filter(r => r.status === 'skipped').length).toBeGreaterThanOrEqual(3)
    for (const r of all) {
      expect(['deployed', 'unchanged', 'rolled-back', 'skipped']).toContain(r.status)
      if (r.status === 'skipped') expect(r.error).toMatch(/^cancelled/)
    }
    // The server caught in its health check went back to the image it ran before.
    expect(all.find(r => r.status === 'rolled-back')?.error).toMatch(/^cancelled during the deploy; restored .*, which is healthy$/)
    for (const name of SIX) {
      expect(lockExists(name)).toBe(false)
      expect(['v1', 'v2']).toContain(await healthOf(name))
    }
  })

  it('a run killed outright (SIGKILL) leaves a lock that expires; the next deploy takes it over with a warning', async () => {
    touched.add('s2')
    const target = (await healthOf('s2')) === 'v1' ? 'v2' : 'v1'
    const killed = await deploy(
      { image: fleet.images[target], servers: 's2', 'command-timeout': '10', 'health-timeout': '10' },
      { onSpawn: child => when('[s2] pulling', () => child.kill('SIGKILL')).onSpawn(child) }
    )
    expect(killed.signal).toBe('SIGKILL')
    const note = readFileSync(join(server(fleet, 's2').path, '.openclaw-deploy', 'lock', 'holder'), 'utf8')
    const [holder, expires] = note.split('\n')
    expect(expires).toMatch(/^expires=\d+$/)
    // The lease covers the step the run was in (command-timeout 10 s + 35 s), no more.
    expect(Number(expires!.slice('expires='.length)) * 1000 - Date.now()).toBeLessThanOrEqual(46_000)

    const next = await deploy({ image: fleet.images[target], servers: 's2', 'lock-timeout': '90' })
    expect(statusOf(next)).toEqual({ s2: 'deployed' })
    // (named as other runs see a holder: without its token), taken over as soon as the lease ended
    // (the wait looks again every second; a few seconds more on a busy machine)
    const warning = `::warning title=s2 (acme)::took over the deploy lock of ${holder!.replace(/ token=\S+/, '')}, whose lease had expired `
    expect(next.stdout).toContain(warning)
    const expiredFor = next.stdout.slice(next.stdout.indexOf(warning) + warning.length).match(/^(\d+)s ago/)?.[1]
    expect(Number(expiredFor)).toBeLessThanOrEqual(10)
    expect(await healthOf('s2')).toBe(target)
  })

  it("a cancelled run killed mid-deploy: the post step releases its locks (and no other run's), the next deploy takes them at once", async () => {
    ;['s3', 's4', 's5'].forEach(n => touched.add(n))
    // from v1, so that the deploy below has a health check to be killed in
    await Promise.all(['s3', 's4'].map(name => rig('reset', name)))
    // both steps of one run: the same run id, so the same lock token (derived from the run)
    const run = { env: { GITHUB_RUN_ID: '900001' } }
    const killed = await deploy(
      { image: fleet.images.v2, servers: 's3,s4', 'health-timeout': '30' },
      { ...run, onSpawn: child => when('[s4] health check', () => child.kill('SIGKILL')).onSpawn(child) }
    )
    expect(killed.signal).toBe('SIGKILL')
    expect(lockExists('s4')).toBe(true)
    // another run holds s5's lock: the post step must leave it alone
    const other = join(server(fleet, 's5').path, '.openclaw-deploy')
    await serverExec('s5', `mkdir -p ${other}/lock && printf 'another run token=feedc0de\\nexpires=%s\\n' $(( $(date +%s) + 600 )) > ${other}/lock/holder && chown -R deploy: ${other}`)
    const note = readFileSync(join(other, 'lock', 'holder'), 'utf8')

    const post = await deploy({ image: fleet.images.v2, servers: 's3,s4,s5' }, { ...run, entry: join('dist', 'post', 'index.js') })
    expect(post.code).toBe(0)
    expect(lockExists('s3')).toBe(false)
    expect(lockExists('s4')).toBe(false)
    expect(readFileSync(join(other, 'lock', 'holder'), 'utf8')).toBe(note)
    await serverExec('s5', `rm -rf ${other}/lock`)

    const next = await deploy({ image: fleet.images.v2, servers: 's3,s4', 'lock-timeout': '0' })
    expect(next.code).toBe(0)
    expect(next.stdout).not.toContain('took over the deploy lock')
    for (const name of ['s3', 's4']) expect(await healthOf(name)).toBe('v2')
    // the tests after this one start these servers from v1
    await Promise.all(['s3', 's4'].map(name => rig('reset', name)))
  })

  it('follows a moving tag when no image is given, and rolls back to the old image after the tag moved', async () => {
    touched.add('s4')
    const prd = `${fleet.registry}/openclaw:prd`
    const publish = (image: string) => serverExec('s4', `docker pull -q ${image} >/dev/null && docker tag ${image} ${prd} && docker push -q ${prd} >/dev/null`)
    expect((await publish(fleet.images.v1)).code).toBe(0)
    const file = join(server(fleet, 's4').path, '.env')
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^OPENCLAW_IMAGE=.*$/m, `OPENCLAW_IMAGE=${prd}`))
    await serverExec('s4', 'docker compose up -d 2>&1')

    const same = await deploy({ image: '', servers: 's4' })
    expect(statusOf(same)).toEqual({ s4: 'unchanged' })

    expect((await publish(fleet.images.v2)).code).toBe(0)
    const moved = await deploy({ image: '', servers: 's4' })
    expect(statusOf(moved)).toEqual({ s4: 'deployed' })
    expect(resultsOf(moved)[0]).toMatchObject({ previousImage: prd, deployedImage: prd })
    expect(await healthOf('s4')).toBe('v2')

    // The tag now points at a broken build: the rollback must bring back the image that ran (v2),
    // not whatever the tag names.
    expect((await publish(fleet.images.broken)).code).toBe(0)
    const broken = await deploy({ image: '', servers: 's4', 'health-timeout': '5' })
    expect(statusOf(broken)).toEqual({ s4: 'rolled-back' })
    expect(await healthOf('s4')).toBe('v2')
    expect(readFileSync(file, 'utf8')).toContain(`OPENCLAW_IMAGE=${prd}\n`)
    await rig('reset', 's4')
  })

  it('keeps every other byte of a .env with comments, blank lines, quotes and no trailing newline', async () => {
    touched.add('s1')
    const file = join(server(fleet, 's1').path, '.env')
    // the folders upstream's compose file mounts, from the rig's own .env
    const dirs = envOf(server(fleet, 's1'))
      .split('\n')
      .filter(l => /^OPENCLAW_(CONFIG|WORKSPACE)_DIR=/.test(l))
      .join('\n')
    const original = `# OpenClaw gateway of acme\n\n${dirs}\nOPENCLAW_GATEWAY_TOKEN='s3cr3t with spaces'\nOPENCLAW_IMAGE="${fleet.images.v2}"  # pinned by CI\n  # indented comment\nEXTRA="a=b#c"\r\nNOTE="two\nOPENCLAW_IMAGE=not-this-one\nlines"\nLAST=1`
    writeFileSync(file, original)
    const run = await deploy({ image: fleet.images.v1, servers: 's1' })
    expect(statusOf(run)).toEqual({ s1: 'deployed' })
    expect(readFileSync(file, 'utf8')).toBe(original.replace(fleet.images.v2, fleet.images.v1))
    expect(await healthOf('s1')).toBe('v1')
  })

  /** Runs a command on a server and returns its trimmed stdout; a failing command fails the test. */
  async function sh(name: string, command: string): Promise<string> {
    const r = await serverExec(name, command)
    if (r.code !== 0) throw new Error(`${name}: ${command} exited ${r.code}: ${r.stderr.trim()}`)
    return r.stdout.trim()
  }
  const imageId = (name: string, ref: string) => sh(name, `docker image inspect --format '{{.Id}}' ${ref}`)
  const imageIds = async (name: string) => (await sh(name, "docker images -a --no-trunc --format '{{.ID}}'")).split('\n')

  let variant: Promise<string> | undefined
  /**
   * A third healthy image (v2 with a label; /health answers v2), in the registry. Built on s8, which
   * the tests below do not deploy: Docker remembers a built image's parent, and a parent cannot be removed.
   */
  function variantImage(): Promise<string> {
    const ref = `${fleet.registry}/openclaw:e2e-variant`
    variant ??= sh(
      's8',
      `printf 'FROM %s\\nLABEL e2e=variant\\n' ${fleet.images.v2} | docker build -q -t ${ref} - >/dev/null && docker push -q ${ref} >/dev/null && docker rmi ${ref} >/dev/null`
    ).then(() => ref)
    return variant
  }

  it("prunes only this deployment's old images: another project's dangling image and an in-use image with a second tag survive", async () => {
    touched.add('s3')
    const { registry, images } = fleet
    const other = `${registry}/other-project:build`
    try {
      // Another project on the same server: a dangling image of its own (an import, then its tag moved
      // on), and a container running the broken image under its own tag, a second tag of that image.
      const importOther = (n: string) => `tar -cf - docker-compose.yml | docker import -m ${n} - ${other} >/dev/null`
      await sh('s3', importOther('first'))
      const dangling = await imageId('s3', other)
      await sh('s3', importOther('second'))
      await sh(
        's3',
        `docker pull -q ${images.broken} >/dev/null && docker tag ${images.broken} ${registry}/other-app:stable && docker run -d --name other-app --network none ${registry}/other-app:stable node dist/index.js gateway >/dev/null`
      )
      const broken = await imageId('s3', images.broken)
      const v1 = await imageId('s3', images.v1)

      // Ours: broken (rolled back), then v2, then a third image.
      expect(statusOf(await deploy({ image: images.broken, servers: 's3', 'health-timeout': '5' }))).toEqual({ s3: 'rolled-back' })
      expect(statusOf(await deploy({ image: images.v2, servers: 's3' }))).toEqual({ s3: 'deployed' })
      const v2 = await imageId('s3', images.v2)
      const third = await variantImage()
      const run = await deploy({ image: third, servers: 's3' })
      expect(statusOf(run)).toEqual({ s3: 'deployed' })
      const current = await imageId('s3', third)

      const left = await imageIds('s3')
      // our v1 is gone; the running image and the rollback image (v2) stay
      expect(left).not.toContain(v1)
      expect(left).toEqual(expect.arrayContaining([current, v2]))
      // the other project's images are untouched: its dangling image, and its in-use image with both tags
      expect(left).toEqual(expect.arrayContaining([dangling, await imageId('s3', other)]))
      expect((await sh('s3', `docker image inspect --format '{{join .RepoTags " "}}' ${broken}`)).split(' ').sort()).toEqual([images.broken, `${registry}/other-app:stable`].sort())
      expect(await sh('s3', "docker inspect --format '{{.State.Running}}' other-app")).toBe('true')
      expect(await healthOf('s3')).toBe('v2')
      expect(run.stdout).toMatch(/pruned 1 image\(s\) this deployment no longer needs/)
    } finally {
      await serverExec('s3', `docker rm -f other-app; docker rmi ${registry}/other-app:stable ${other}; docker image prune -f`)
      await rig('reset', 's3')
    }
  })

  it('rolls back and prunes on a server an earlier version deployed (its rollback tag had no hash)', async () => {
    touched.add('s4')
    const { images } = fleet
    const legacyTag = `openclaw-rollback:${server(fleet, 's4')
      .path.replace(/^\/+|\/+$/g, '')
      .replace(/[^A-Za-z0-9_.-]+/g, '_')}`
    try {
      // What an earlier version left after deploying v1 over v2: v2 kept under the old tag, and its record.
      await sh('s4', `docker pull -q ${images.v2} >/dev/null && docker tag ${images.v2} ${legacyTag}`)
      const v2 = await imageId('s4', images.v2)
      await sh('s4', `mkdir -p .openclaw-deploy && printf 'image=%s\\nimage_id=%s\\ntag=%s\\n' ${images.v2} ${v2} ${legacyTag} > .openclaw-deploy/rollback && chown -R deploy: .openclaw-deploy`)

      const rolled = await deploy({ mode: 'rollback', image: '', servers: 's4' })
      expect(resultsOf(rolled)[0]).toMatchObject({ status: 'deployed', deployedImage: images.v2 })
      expect(await healthOf('s4')).toBe('v2')

      // Two deploys on, v2 is neither running nor the rollback image: the old tag and v2 go.
      expect(statusOf(await deploy({ image: images.v1, servers: 's4' }))).toEqual({ s4: 'deployed' })
      expect(statusOf(await deploy({ image: await variantImage(), servers: 's4' }))).toEqual({ s4: 'deployed' })
      expect(await imageIds('s4')).not.toContain(v2)
      expect((await serverExec('s4', `docker image inspect ${legacyTag}`)).code).not.toBe(0)
      // mode: rollback now finds v1 under the new tag
      const back = await deploy({ mode: 'rollback', image: '', servers: 's4' })
      expect(resultsOf(back)[0]).toMatchObject({ status: 'deployed', deployedImage: images.v1 })
      expect(await healthOf('s4')).toBe('v1')
    } finally {
      await rig('reset', 's4')
    }
  })

  it('writes through a .env that links into a secrets folder, keeping the link, its mode and owner', async () => {
    touched.add('s5')
    const { images } = fleet
    const secrets = `${server(fleet, 's5').home}/secrets`
    const file = `${secrets}/openclaw.env`
    await rig('reset', 's5') // from v1: earlier tests may have left s5 on v2
    try {
      await sh('s5', `mkdir -p ${secrets} && cp .env ${file} && chown -R deploy: ${secrets} && chmod 700 ${secrets} && chmod 640 ${file} && ln -sfn ${file} .env`)
      const original = await sh('s5', `cat ${file}`)
      const owner = await sh('s5', `stat -c '%U:%G %a' ${file}`)
      const check = async (image: string) => {
        expect(await sh('s5', 'readlink .env')).toBe(file)
        expect(await sh('s5', `cat ${file}`)).toBe(original.replace(images.v1, image))
        expect(await sh('s5', `stat -c '%U:%G %a' ${file}`)).toBe(owner)
        expect(await sh('s5', `ls -A ${secrets}`)).toBe('openclaw.env')
      }

      expect(statusOf(await deploy({ image: images.v2, servers: 's5' }))).toEqual({ s5: 'deployed' })
      await check(images.v2)
      expect(await healthOf('s5')).toBe('v2')
      // the rollback after a broken image writes through the link too
      expect(statusOf(await deploy({ image: images.broken, servers: 's5', 'health-timeout': '5' }))).toEqual({ s5: 'rolled-back' })
      await check(images.v2)

      // a secrets file of another user cannot be replaced with its owner kept: refused, nothing changed
      await sh('s5', `chown root: ${file} && chmod 666 ${file}`)
      const refused = await deploy({ image: images.v1, servers: 's5' })
      expect(statusOf(refused)).toEqual({ s5: 'failed' })
      expect(resultsOf(refused)[0]!.error).toBe(`write-env failed: cannot replace ${file} and keep its owner root:root: make deploy its owner`)
      expect(await sh('s5', `cat ${file}`)).toBe(original.replace(images.v1, images.v2))
      expect(await healthOf('s5')).toBe('v2')
    } finally {
      await serverExec('s5', `rm -f .env && rm -rf ${secrets}`)
      await rig('reset', 's5')
    }
  })

  it('mode: rollback to an image that is not healthy goes back to the image that ran, and keeps the record', async () => {
    touched.add('s6')
    const { images } = fleet
    // A broken release left running (rollback off), then v2 deployed over it: the record names broken.
    expect(statusOf(await deploy({ image: images.broken, servers: 's6', rollback: 'false', 'health-timeout': '3' }))).toEqual({ s6: 'failed' })
    expect(statusOf(await deploy({ image: images.v2, servers: 's6' }))).toEqual({ s6: 'deployed' })
    const recordFile = join(server(fleet, 's6').path, '.openclaw-deploy', 'rollback')
    const recorded = readFileSync(recordFile, 'utf8')
    expect(recorded).toContain(`image=${images.broken}\n`)

    const run = await deploy({ mode: 'rollback', image: '', servers: 's6', 'health-timeout': '5' })
    expect(run.code).toBe(1)
    expect(resultsOf(run)[0]).toMatchObject({ status: 'rolled-back', previousImage: images.v2, deployedImage: images.v2 })
    expect(resultsOf(run)[0]!.error).toMatch(
      new RegExp(`not healthy within 5s: .*; the recorded image ${images.broken} did not become healthy; went back to ${images.v2}, which ran before and is healthy; the rollback record is kept$`)
    )
    expect(await healthOf('s6')).toBe('v2')
    expect(envOf(server(fleet, 's6'))).toContain(`OPENCLAW_IMAGE=${images.v2}\n`)
    expect(readFileSync(recordFile, 'utf8')).toBe(recorded)
    expect(historyOf('s6')).toMatch(new RegExp(`rolled-back\t${images.broken} -> ${images.v2}`))
  })

  it('stops a mistyped path at the lock, naming the folder, the server and the fix, and creates nothing', async () => {
    touched.add('s2')
    const typo = `${server(fleet, 's2').path}-prd`
    const file = writeRegistry(fleet, ['s2'], { path: typo })
    const run = await runAction({ 'servers-file': file, ...actionKeyInputs(fleet), image: fleet.images.v1 })
    expect(statusOf(run)).toEqual({ s2: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(new RegExp(`^lock failed: deployment folder ${typo} does not exist on \\S+: set the server's path in the registry`))
    expect((await serverExec('s2', `test -e ${typo}`)).code).toBe(1)
  })

  it("says why a pull failed in Docker's words, and changes nothing", async () => {
    touched.add('s2')
    const before = envOf(server(fleet, 's2'))
    const run = await deploy({ image: `${fleet.registry}/openclaw:no-such-tag`, servers: 's2' })
    expect(statusOf(run)).toEqual({ s2: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(/^pull failed: docker pull \S+:no-such-tag failed: .*(manifest unknown|not found)/)
    expect(envOf(server(fleet, 's2'))).toBe(before)
  })
})
