// Proves the rig itself: every server answers SSH as `deploy` with the rig's key and host keys,
// runs its own Docker daemon with the OpenClaw-shaped project on v1, pulls from the local registry,
// and cannot reach anything outside the rig's network. Also checks the helpers the other e2e tests use.
import { beforeAll, describe, expect, test } from '@jest/globals'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  actionKeyInputs,
  baselineEnvOf,
  FAKE_GITHUB_TOKEN,
  envOf,
  healthOf,
  parseCommandFile,
  readFleet,
  rig,
  run,
  runAction,
  scratchDir,
  server,
  serverExec,
  writeRegistry,
  type Fleet,
  type FleetServer
} from '../rig/fleet.js'

const fleet: Fleet = readFleet()
const last = fleet.servers[fleet.servers.length - 1]

// test files share the rig and run in any order: start from the baseline
beforeAll(async () => {
  await rig('reset', 'all')
})

function ssh(s: FleetServer, command: string, knownHosts = fleet.knownHostsFile, timeoutSeconds = 5) {
  return run(
    'ssh',
    [
      '-F',
      '/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `ConnectTimeout=${timeoutSeconds}`,
      '-o',
      'LogLevel=ERROR',
      '-i',
      fleet.privateKeyFile,
      '-p',
      String(s.port),
      `${s.user}@${s.host}`,
      command
    ],
    { timeoutMs: 60_000 }
  )
}

describe('the rig', () => {
  test('fleet.json describes every server', () => {
    expect(fleet.docker).toBe(true)
    expect(fleet.servers.length).toBe(Number(process.env.RIG_SERVERS ?? '8'))
    expect(fleet.registry).toBe('10.200.0.1:5000')
    for (const image of Object.values(fleet.images)) expect(image.startsWith(`${fleet.registry}/`)).toBe(true)
    const hosts = new Set(fleet.servers.map(s => s.host))
    expect(hosts.size).toBe(fleet.servers.length)
    const keys = new Set(fleet.servers.map(s => s.hostKey))
    expect(keys.size).toBe(fleet.servers.length)
    for (const s of fleet.servers) {
      expect(s.host).toMatch(/^10\.200\.0\.\d+$/)
      expect(s.hostKey).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
      expect(s.dockerHost).toMatch(/^unix:\/\//)
      expect(envOf(s)).toBe(baselineEnvOf(s))
    }
  })

  describe.each(fleet.servers.map(s => [s.name, s] as const))('%s', (_name, s) => {
    test('answers SSH as deploy (strict host key), runs the project on v1 with its own daemon', async () => {
      const r = await ssh(
        s,
        `set -e; cd ${s.path}; echo "DOCKER_HOST=$DOCKER_HOST"; id -un; ` +
          `docker compose ps --format '{{.Service}} {{.State}} {{.Image}}'; echo ---; cat .env; echo ---; ` +
          'curl -fsS --max-time 5 http://127.0.0.1:18789/health'
      )
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      const [head, env, health] = r.stdout.split('---\n')
      expect(head).toContain(`DOCKER_HOST=${s.dockerHost}\n`)
      expect(head).toContain('deploy\n')
      expect(head).toContain(`gateway running ${fleet.images.v1}`)
      expect(env).toContain(`OPENCLAW_IMAGE=${fleet.images.v1}\n`)
      expect(env).toContain('OPENCLAW_GATEWAY_TOKEN=')
      expect(health).toBe('v1')
      expect(await healthOf(s.name)).toBe('v1')
    })
  })

  test('a host key that does not match is refused before login', async () => {
    const [a, b] = [fleet.servers[0], fleet.servers[1] ?? fleet.servers[0]]
    const pub = (await serverExec(b.name, `cat ${fleet.rigDir}/${b.name}/ssh_host_ed25519_key.pub`)).stdout
    const wrong = join(scratchDir('known-hosts'), 'known_hosts')
    // a's address with b's key (a freshly generated key when there is only one server)
    const key = a === b ? (await run('bash', ['-c', 'd=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f $d/k; cat $d/k.pub; rm -r $d'])).stdout : pub
    writeFileSync(wrong, `${a.host} ${key.split(' ').slice(0, 2).join(' ')}\n`)
    const r = await ssh(a, 'echo logged-in', wrong)
    expect(r.code).not.toBe(0)
    expect(r.stdout).not.toContain('logged-in')
    expect(r.stderr).toMatch(/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i)
  })

  test('each server has its own home for deploy', async () => {
    const [a, b] = [fleet.servers[0], fleet.servers[fleet.servers.length - 1]]
    const marker = `rig-test-${Date.now()}`
    expect((await ssh(a, `touch ~/${marker} && echo $HOME`)).code).toBe(0)
    expect((await ssh(a, `test -e ~/${marker}`)).code).toBe(0)
    if (a !== b) expect((await ssh(b, `test -e ~/${marker}`)).code).not.toBe(0)
    expect((await ssh(a, `rm ~/${marker}`)).code).toBe(0)
  })

  test('the local registry holds v1, v2 and broken', async () => {
    const res = await fetch(`http://${fleet.registry}/v2/openclaw/tags/list`)
    expect(res.status).toBe(200)
    const body = (await res.json()) as { tags: string[] }
    // other tests may push tags of their own (deploy.test.ts: a moving `prd` tag)
    expect(body.tags).toEqual(expect.arrayContaining(['broken', 'v1', 'v2']))
  })

  test('servers reach nothing outside 10.200.0.0/24', async () => {
    const s = fleet.servers[0]
    const routes = await serverExec(s.name, 'ip route show; echo ---; ip route get 10.200.1.1 2>&1; echo "rc=$?"; ip route get 192.0.2.1 2>&1; echo "rc=$?"')
    expect(routes.code).toBe(0)
    const [table, probes] = routes.stdout.split('---\n')
    expect(table).not.toMatch(/^default/m)
    // besides the link to the rig's bridge, only the routes of Compose's own project networks (on
    // bridges inside this server's namespace, scope link): nothing leads off the machine
    const [link, ...projectNetworks] = table.trim().split('\n')
    expect(link).toMatch(/^10\.200\.0\.0\/24 dev eth0/)
    for (const route of projectNetworks) expect(route).toMatch(/^172\.\d+\.0\.0\/16 dev br-[0-9a-f]+ proto kernel scope link/)
    expect(probes).toMatch(/Network is unreachable\nrc=2\n.*Network is unreachable\nrc=2/s)
    // and on the host, the guard route catches the rest of 10.200.0.0/16
    const guard = await run('ip', ['route', 'show', '10.200.0.0/16'])
    expect(guard.stdout).toMatch(/^unreachable 10\.200\.0\.0\/16 metric 4000/m)
    const host = await run('ip', ['route', 'get', '10.200.1.1'])
    expect(host.code).not.toBe(0)
    expect(host.stderr).toMatch(/No route to host|unreachable/)
  })

  test('v2 and broken behave as documented; reset puts a server back on its baseline', async () => {
    const s = last
    const deploy = async (image: string) => {
      const r = await serverExec(s.name, `sed -i 's|^OPENCLAW_IMAGE=.*|OPENCLAW_IMAGE=${image}|' .env && docker compose up -d --quiet-pull 2>&1`)
      expect(r.code).toBe(0)
    }
    await deploy(fleet.images.v2)
    await expect(waitFor(() => healthOf(s.name), 'v2')).resolves.toBe('v2')
    await deploy(fleet.images.broken)
    const code = await waitFor(async () => (await serverExec(s.name, 'curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:18789/health')).stdout, '404')
    expect(code).toBe('404')
    expect(await healthOf(s.name)).toBeUndefined()
    await serverExec(s.name, 'mkdir -p .openclaw-deploy && echo locked > .openclaw-deploy/lock && echo x >> deploy-history.log')

    await rig('reset', s.name)
    expect(envOf(s)).toBe(baselineEnvOf(s))
    expect(await healthOf(s.name)).toBe('v1')
    const ls = await serverExec(s.name, 'ls -A; echo ---; docker images --format "{{.Repository}}:{{.Tag}}"')
    const [files, images] = ls.stdout.split('---\n')
    expect(files.trim().split('\n').sort()).toEqual(['.env', 'docker-compose.yml'])
    expect(images.trim()).toBe(fleet.images.v1)
  })

  test('cut takes a server off the network, mend brings it back', async () => {
    const s = last
    await rig('cut', s.name)
    try {
      const r = await ssh(s, 'echo hi', fleet.knownHostsFile, 2)
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(/timed out/i)
    } finally {
      await rig('mend', s.name)
    }
    const back = await waitFor(async () => (await ssh(s, 'echo hi')).stdout.trim(), 'hi')
    expect(back).toBe('hi')
  })

  test('the registry can be stopped and started', async () => {
    await rig('registry', 'stop')
    try {
      await expect(fetch(`http://${fleet.registry}/v2/`)).rejects.toThrow()
      const pull = await serverExec(fleet.servers[0].name, `docker pull -q ${fleet.images.v2} 2>&1`)
      expect(pull.code).not.toBe(0)
    } finally {
      await rig('registry', 'start')
    }
    expect((await fetch(`http://${fleet.registry}/v2/`)).status).toBe(200)
    await rig('reset', fleet.servers[0].name)
  })

  test('status reports the rig up', async () => {
    expect(await rig('status')).toMatch(new RegExp(`^up: ${fleet.servers.length} servers`))
  })
})

describe('runAction', () => {
  test('passes inputs and files the way the runner does, and reads outputs and the summary', async () => {
    const script = join(scratchDir('fake-action'), 'fake.mjs')
    writeFileSync(
      script,
      `import { appendFileSync } from 'node:fs'
const e = process.env
const inputs = Object.fromEntries(Object.entries(e).filter(([k]) => k.startsWith('INPUT_')))
appendFileSync(e.GITHUB_OUTPUT, 'inputs<<ghadelimiter_1\\n' + JSON.stringify(inputs) + '\\nghadelimiter_1\\n')
appendFileSync(e.GITHUB_OUTPUT, 'multi<<EOF\\nline 1\\nline 2\\nEOF\\n')
appendFileSync(e.GITHUB_OUTPUT, 'plain=yes\\n')
appendFileSync(e.GITHUB_STEP_SUMMARY, '## summary\\n')
console.log(process.cwd() === e.GITHUB_WORKSPACE ? 'cwd-ok' : 'cwd-wrong', e.RUNNER_TEMP ? 'temp-ok' : '', process.version)
process.exitCode = 3
`
    )
    let recorded = false
    const r = await runAction({ 'ssh-private-key': 'KEY', servers: 's1\ns2' }, { entry: script, timeoutMs: 30_000, onSpawn: child => (recorded = existsSync(pidFile(child.pid))) })
    expect(recorded).toBe(true) // so that rig.sh down can end a run that outlives its test
    expect(readdirSync(join(fleet.rigDir, 'pids')).filter(f => f.startsWith('action-'))).toEqual([])
    expect(r.code).toBe(3)
    expect(r.timedOut).toBe(false)
    expect(r.stdout).toContain('cwd-ok temp-ok')
    expect(r.summary).toBe('## summary\n')
    expect(r.outputs.multi).toBe('line 1\nline 2')
    expect(r.outputs.plain).toBe('yes')
    const inputs = JSON.parse(r.outputs.inputs) as Record<string, string>
    expect(inputs['INPUT_SSH-PRIVATE-KEY']).toBe('KEY')
    expect(inputs.INPUT_SERVERS).toBe('s1\ns2')
    expect(inputs['INPUT_MAX-PARALLEL']).toBe('10') // action.yml's default, as the runner passes it
    expect(inputs['INPUT_GITHUB-TOKEN']).toBe(FAKE_GITHUB_TOKEN) // `${{ github.token }}` evaluated
  })

  test('parseCommandFile reads heredocs and plain lines', () => {
    expect(parseCommandFile('a<<X\n1\n\n2\nX\nb=c=d\n')).toEqual({ a: '1\n\n2', b: 'c=d' })
    expect(() => parseCommandFile('a<<X\n1\n')).toThrow(/unterminated/)
  })

  test('the bundled action runs in dry-run against a rig registry without touching the server', async () => {
    const s = server(fleet, 's1')
    const r = await runAction(
      {
        ...actionKeyInputs(fleet),
        'servers-file': writeRegistry(fleet, [s]),
        image: fleet.images.v2,
        'dry-run': 'true'
      },
      { timeoutMs: 60_000 }
    )
    expect(r.timedOut).toBe(false)
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    expect(r.stdout).not.toContain('${{')
    expect(envOf(s)).toBe(baselineEnvOf(s))
    expect(await healthOf(s.name)).toBe('v1')
  })
})

function pidFile(pid: number | undefined): string {
  return join(fleet.rigDir, 'pids', `action-${pid}`)
}

async function waitFor<T>(probe: () => Promise<T>, want: T, timeoutMs = 30_000): Promise<T | undefined> {
  const end = Date.now() + timeoutMs
  let got: T | undefined
  while (Date.now() < end) {
    got = await probe()
    if (got === want) return got
    await new Promise(r => setTimeout(r, 300))
  }
  return got
}
