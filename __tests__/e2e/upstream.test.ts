// Deploys judged on upstream OpenClaw's own project shape, as docker-setup.sh leaves a server: the
// gateway on the project's bridge network with published ports and `restart: unless-stopped`, and
// openclaw-cli (interactive, no restart policy) stopped or, on servers set up like the seed's,
// created by an earlier `docker compose up -d` and exited 0. Stand-in images (busybox), not OpenClaw.
import { afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { actionKeyInputs, envOf, healthOf, readFleet, resultsOf, statusOf, rig, runAction, server, serverExec, writeRegistry, type ActionRun, type Fleet } from '../rig/fleet.js'

const THREE = ['s1', 's2', 's3']

let fleet: Fleet
let registryFile: string

function deploy(inputs: Record<string, string>, file = registryFile): Promise<ActionRun> {
  return runAction({ 'servers-file': file, ...actionKeyInputs(fleet), 'health-timeout': '8', ...inputs })
}

async function sh(name: string, command: string): Promise<string> {
  const r = await serverExec(name, command)
  if (r.code !== 0) throw new Error(`${name}: ${command}: exit ${r.code}: ${r.stderr}`)
  return r.stdout.trim()
}

/** `service state exit-code image` of every container of the project, sorted. */
const containers = (name: string) => sh(name, "docker compose ps -a --format '{{.Service}} {{.State}} {{.ExitCode}} {{.Image}}' | sort")
/** Container IDs and start times: what changes when a container is recreated or restarted. */
const starts = (name: string) => sh(name, "docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}}' $(docker compose ps -aq) | sort")
/** Copies of .env the action keeps in its state folder (only while a deploy needs one for a rollback). */
const envCopies = (name: string) => sh(name, 'ls -A .openclaw-deploy | grep "^env" || true')
const anyRestarting = async (name: string) => (await sh(name, "docker inspect --format '{{.State.Restarting}}' $(docker compose ps -aq)")).includes('true')

beforeAll(async () => {
  fleet = readFleet()
  // s3's registry entry names the gateway service explicitly, as some operators' entries do
  registryFile = writeRegistry(fleet, THREE, s => ({ tenant: `tenant-${s.name}`, services: s.name === 's3' ? ['openclaw-gateway'] : undefined }))
  await rig('reset', 'all')
})

beforeEach(async () => {
  await Promise.all(THREE.map(name => rig('reset', name)))
  // s1 as the seed's servers are: an earlier `docker compose up -d` created openclaw-cli, which exited 0
  await sh(
    's1',
    'docker compose up -d --quiet-pull >/dev/null 2>&1; for i in $(seq 50); do [ "$(docker compose ps -a --format "{{.State}}" openclaw-cli)" = exited ] && exit 0; sleep 0.1; done; exit 1'
  )
})

afterEach(async () => {
  await rig('registry', 'start')
})

describe('upstream OpenClaw project', () => {
  it('the rig runs it as docker-setup.sh leaves it', async () => {
    const s2 = server(fleet, 's2')
    expect(await containers('s2')).toBe(`openclaw-gateway running 0 ${fleet.images.v1}`)
    expect(await containers('s1')).toBe([`openclaw-cli exited 0 ${fleet.images.v1}`, `openclaw-gateway running 0 ${fleet.images.v1}`].join('\n'))
    const shape = await sh(
      's2',
      "docker inspect --format '{{.Config.User}} {{.Config.WorkingDir}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Init}} {{range $p, $b := .HostConfig.PortBindings}}{{$p}} {{end}}' $(docker compose ps -q openclaw-gateway)"
    )
    expect(shape).toBe('1000:1000 /app unless-stopped true 18789/tcp 18790/tcp')
    expect(await sh('s2', 'docker compose run --rm -T openclaw-cli')).toMatch(/^Usage: openclaw/)
    const env = envOf(s2)
    for (const name of [
      'OPENCLAW_CONFIG_DIR',
      'OPENCLAW_WORKSPACE_DIR',
      'OPENCLAW_GATEWAY_PORT',
      'OPENCLAW_BRIDGE_PORT',
      'OPENCLAW_GATEWAY_BIND',
      'OPENCLAW_GATEWAY_TOKEN',
      'OPENCLAW_IMAGE',
      'OPENCLAW_EXTRA_MOUNTS',
      'OPENCLAW_HOME_VOLUME',
      'OPENCLAW_DOCKER_APT_PACKAGES',
      'CLAUDE_AI_SESSION_KEY',
      'OPENAI_API_KEY'
    ]) {
      expect(env).toMatch(new RegExp(`^${name}=`, 'm'))
    }
  })

  it('deploys a new image to what runs, starts no stopped openclaw-cli, and changes only the image line', async () => {
    const envs = THREE.map(n => envOf(server(fleet, n)))
    const run = await deploy({ image: fleet.images.v2 })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s1: 'deployed', s2: 'deployed', s3: 'deployed' })
    for (const [i, name] of THREE.entries()) {
      expect(await healthOf(name)).toBe('v2')
      expect(envOf(server(fleet, name))).toBe(envs[i]!.replace(`OPENCLAW_IMAGE=${fleet.images.v1}\n`, `OPENCLAW_IMAGE=${fleet.images.v2}\n`))
      expect(await anyRestarting(name)).toBe(false)
    }
    // s1's exited CLI was left as it was (not started, not recreated); s2 and s3 still have none
    expect(await containers('s1')).toBe([`openclaw-cli exited 0 ${fleet.images.v1}`, `openclaw-gateway running 0 ${fleet.images.v2}`].join('\n'))
    expect(await containers('s2')).toBe(`openclaw-gateway running 0 ${fleet.images.v2}`)
    expect(await containers('s3')).toBe(`openclaw-gateway running 0 ${fleet.images.v2}`)
    // the copy of the old .env kept for a rollback is gone once the deploy is healthy
    for (const name of THREE) expect(await envCopies(name)).toBe('')
  })

  it('a broken image ends rolled-back (never failed) on every server, healthy, .env as it was', async () => {
    const envs = THREE.map(n => envOf(server(fleet, n)))
    const run = await deploy({ image: fleet.images.broken })
    expect(run.code).toBe(1)
    expect(statusOf(run)).toEqual({ s1: 'rolled-back', s2: 'rolled-back', s3: 'rolled-back' })
    for (const [i, name] of THREE.entries()) {
      expect(await healthOf(name)).toBe('v1')
      expect(envOf(server(fleet, name))).toBe(envs[i])
      expect(await anyRestarting(name)).toBe(false)
    }
    expect(resultsOf(run)[0]!.error).toMatch(/answered HTTP 404; containers: openclaw-gateway running; restored .*:v1, which is healthy/)
    for (const name of THREE) expect(await envCopies(name)).toBe('')
  })

  it('a gateway in a restart loop is a failure: rolled back, nothing left restarting', async () => {
    const run = await deploy({ image: fleet.images.crash, servers: 's1,s2', 'health-timeout': '6' })
    expect(statusOf(run)).toEqual({ s1: 'rolled-back', s2: 'rolled-back' })
    expect(resultsOf(run)[0]!.error).toMatch(/openclaw-gateway (restarting|exited 1|running after [1-9]\d* restarts?)/)
    for (const name of ['s1', 's2']) {
      expect(await healthOf(name)).toBe('v1')
      expect(await anyRestarting(name)).toBe(false)
    }
  })

  it('on a server where nothing ran yet: starts the gateway only, never openclaw-cli', async () => {
    // a server set up but never started (docker-setup.sh stopped before its `up`)
    await sh('s2', 'docker compose down >/dev/null 2>&1')
    expect(await sh('s2', 'docker compose ps -a -q')).toBe('')
    const run = await deploy({ image: fleet.images.v2, servers: 's2' })
    expect(statusOf(run)).toEqual({ s2: 'deployed' })
    expect(await containers('s2')).toBe(`openclaw-gateway running 0 ${fleet.images.v2}`)
    expect(await healthOf('s2')).toBe('v2')
  })

  it('a first deploy of an image in a restart loop fails with nothing to restore, and leaves nothing restarting', async () => {
    // nothing to go back to: no container, no image line in .env, no image of the compose default
    await sh('s2', "docker compose down >/dev/null 2>&1 && sed -i '/^OPENCLAW_IMAGE=/d' .env && { docker rmi openclaw:local >/dev/null 2>&1 || true; }")
    const run = await deploy({ image: fleet.images.crash, servers: 's2', 'health-timeout': '6' })
    expect(statusOf(run)).toEqual({ s2: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(/openclaw-gateway (restarting|exited 1|running after [1-9]\d* restarts?)/)
    expect(resultsOf(run)[0]!.error).toMatch(/no previous image to roll back to: stopped openclaw-gateway, so nothing is left restarting/)
    expect(await anyRestarting('s2')).toBe(false)
    // the next deploy fails too: its rollback starts the stopped crash-looping image, which is stopped again
    const next = await deploy({ image: fleet.images.broken, servers: 's2', 'health-timeout': '6' })
    expect(statusOf(next)).toEqual({ s2: 'failed' })
    expect(resultsOf(next)[0]!.error).toMatch(/did not become healthy either; .* did not run before this deploy either: stopped openclaw-gateway, so nothing is left restarting/)
    expect(await anyRestarting('s2')).toBe(false)
  })

  it('mode: status says healthy for a healthy gateway beside an exited CLI, unhealthy for a stopped or broken one', async () => {
    // s2's gateway stopped by hand: it has a restart policy and does not run
    await sh('s2', 'docker compose stop openclaw-gateway >/dev/null 2>&1')
    // s3 runs a gateway that answers 404
    await sh('s3', `sed -i 's|^OPENCLAW_IMAGE=.*|OPENCLAW_IMAGE=${fleet.images.broken}|' .env && docker compose up -d --quiet-pull openclaw-gateway >/dev/null 2>&1`)
    const run = await deploy({ mode: 'status' })
    expect(statusOf(run)).toEqual({ s1: 'healthy', s2: 'unhealthy', s3: 'unhealthy' })
    expect(run.summary).toContain('openclaw-cli exited 0')
  })

  it('mode: rollback returns to the image before the last deploy, on the services that run', async () => {
    expect((await deploy({ image: fleet.images.v2 })).code).toBe(0)
    const run = await deploy({ mode: 'rollback' })
    expect(run.code).toBe(0)
    expect(statusOf(run)).toEqual({ s1: 'deployed', s2: 'deployed', s3: 'deployed' })
    for (const name of THREE) expect(await healthOf(name)).toBe('v1')
    expect(await containers('s1')).toBe([`openclaw-cli exited 0 ${fleet.images.v1}`, `openclaw-gateway running 0 ${fleet.images.v1}`].join('\n'))
  })

  it('.env without the image variable: the compose default ran; a deploy adds exactly one line, a rollback restores the file as it was', async () => {
    // docker-setup.sh's image name, built on the server: here the rig's v1 tagged so
    await sh('s2', `docker tag ${fleet.images.v1} openclaw:local && sed -i '/^OPENCLAW_IMAGE=/d' .env && docker compose up -d openclaw-gateway >/dev/null 2>&1`)
    const s2 = server(fleet, 's2')
    const original = envOf(s2)
    expect(original).not.toContain('OPENCLAW_IMAGE')
    expect(await containers('s2')).toBe('openclaw-gateway running 0 openclaw:local')

    const broken = await deploy({ image: fleet.images.broken, servers: 's2' })
    expect(statusOf(broken)).toEqual({ s2: 'rolled-back' })
    expect(envOf(s2)).toBe(original)
    expect(await containers('s2')).toBe('openclaw-gateway running 0 openclaw:local')
    expect(await healthOf('s2')).toBe('v1')

    const run = await deploy({ image: fleet.images.v2, servers: 's2' })
    expect(statusOf(run)).toEqual({ s2: 'deployed' })
    expect(resultsOf(run)[0]).toMatchObject({ previousImage: 'openclaw:local', deployedImage: fleet.images.v2 })
    expect(envOf(s2)).toBe(`${original}OPENCLAW_IMAGE=${fleet.images.v2}\n`)
    expect(await healthOf('s2')).toBe('v2')
  })

  it('after a run killed between its .env write and compose up, the rollback target is the image that ran', async () => {
    // what such a run leaves: .env names v2, v1 still runs
    await sh('s2', `sed -i 's|^OPENCLAW_IMAGE=.*|OPENCLAW_IMAGE=${fleet.images.v2}|' .env`)
    const run = await deploy({ image: fleet.images.broken, servers: 's2' })
    expect(statusOf(run)).toEqual({ s2: 'rolled-back' })
    expect(resultsOf(run)[0]).toMatchObject({ previousImage: fleet.images.v1, deployedImage: fleet.images.v1 })
    expect(await healthOf('s2')).toBe('v1')
    expect(envOf(server(fleet, 's2'))).toMatch(new RegExp(`^OPENCLAW_IMAGE=${fleet.images.v1}$`, 'm'))
  })

  it('refuses a compose file that does not take the image from the variable, before anything changes', async () => {
    await sh('s2', `sed -i 's|\\\${OPENCLAW_IMAGE:-openclaw:local}|${fleet.images.v1}|' docker-compose.yml`)
    const env = envOf(server(fleet, 's2'))
    const before = await starts('s2')
    const run = await deploy({ image: fleet.images.v2, servers: 's2' })
    expect(statusOf(run)).toEqual({ s2: 'failed' })
    expect(resultsOf(run)[0]!.error).toMatch(/docker-compose.yml takes no service's image from \$\{OPENCLAW_IMAGE\}.*Nothing was changed/)
    expect(envOf(server(fleet, 's2'))).toBe(env)
    expect(await starts('s2')).toBe(before)
  })

  it('a project of another shape (one service on the host network) deploys and rolls back the same way', async () => {
    await rig('shape', 's2', 'simple')
    try {
      const run = await deploy({ image: fleet.images.v2, servers: 's2' })
      expect(statusOf(run)).toEqual({ s2: 'deployed' })
      const broken = await deploy({ image: fleet.images.broken, servers: 's2' })
      expect(statusOf(broken)).toEqual({ s2: 'rolled-back' })
      expect(await healthOf('s2')).toBe('v2')
    } finally {
      await rig('shape', 's2', 'upstream')
    }
  })
})
