// The operator kit on a bare server (bare-server.sh: its own root, Docker running, no deploy user):
// setup-server.sh provisions it with the command the docs show, the bundled action deploys to it
// on the first try with the registry entry and known_hosts lines it printed, and backup-openclaw.sh
// backs up, keeps 7 days and restores byte for byte by the documented procedure. Tests run in order
// and build on each other, as an operator's first day would.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readFleet, rig, run, runAction, scratchDir, type ActionRun, type ExecResult, type Fleet } from '../rig/fleet.js'
import { bareDown, bareExec, bareUp, docScript, operatorFor, runDocBlock, sshAs, type BareServer, type Operator } from '../rig/operator-kit.js'

const NAME = 'b1'
const PROJECT = '/home/deploy/openclaw-prd'
const BACKUPS = '/home/deploy/backups/openclaw-prd'

let fleet: Fleet
let bare: BareServer
let operator: Operator
/** What the first setup-server.sh run printed: the registry entry and the known_hosts lines. */
let entry: Record<string, unknown>
let knownHosts: string

interface Printed {
  entry: Record<string, unknown>
  knownHosts: string
}

/** The registry entry and known_hosts lines from setup-server.sh's output. */
function parsePrinted(stdout: string): Printed {
  const lines = stdout.split('\n')
  const entryLine = lines.find(l => l.trim().startsWith('{"name"'))
  if (!entryLine) throw new Error(`no registry entry in the output:\n${stdout}`)
  const start = lines.findIndex(l => l.startsWith('2. known_hosts lines'))
  const known: string[] = []
  for (let i = start + 2; i < lines.length && lines[i].trim(); i++) known.push(lines[i].trim())
  return { entry: JSON.parse(entryLine) as Record<string, unknown>, knownHosts: known.join('\n') + '\n' }
}

function registryWith(...entries: Array<Record<string, unknown>>): string {
  const file = join(scratchDir('kit-registry'), 'production.json')
  writeFileSync(file, JSON.stringify({ servers: entries }, null, 2) + '\n')
  return file
}

function deployAction(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction({
    'servers-file': registryWith(entry),
    'ssh-private-key': readFileSync(operator.deployKeyFile, 'utf8'),
    'known-hosts': knownHosts,
    ...inputs
  })
}

function statuses(r: ActionRun): string[] {
  return (JSON.parse(r.outputs.results ?? '[]') as Array<{ status: string }>).map(x => x.status)
}

function explain(r: ExecResult | ActionRun): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`
}

/** Runs a shell script on the server as the deploy user, over SSH with the deploy key. */
function asDeploy(script: string): Promise<ExecResult> {
  return sshAs(bare, 'deploy', operator.deployKeyFile, 'bash -s', script)
}

/** GET /health on the server's side, waiting up to 30 s for a (re)started gateway to answer. */
async function healthOnBare(): Promise<string> {
  const r = await bareExec(NAME, 'for i in $(seq 60); do curl -fsS --max-time 3 http://127.0.0.1:18789/health && exit 0; sleep 0.5; done; exit 1')
  return r.code === 0 ? r.stdout.trim() : `not healthy: ${explain(r)}`
}

/** Paths, modes, sizes and SHA-256 of everything a backup holds. */
const SNAPSHOT = `cd ${PROJECT} && find .env docker-compose.yml config -printf '%p %y %m %s\\n' | sort && find .env docker-compose.yml config -type f -exec sha256sum {} + | sort -k2`

beforeAll(async () => {
  fleet = readFleet()
  await rig('registry', 'start') // the images come from it; an earlier test file may have stopped it
  bare = await bareUp(NAME)
  operator = operatorFor(bare)
}, 180_000)

afterAll(async () => {
  await bareDown(NAME)
}, 120_000)

describe('setup-server.sh', () => {
  test('a server without Docker is refused with the reason, before anything changes', async () => {
    // every docker program on the PATH, moved aside in the server's own root (this machine keeps its own)
    const hide = await bareExec(NAME, 'for d in $(type -ap docker | xargs -n 1 readlink -f | sort -u); do mv "$d" "$d.hidden" && echo "$d"; done')
    const dockers = hide.stdout.trim().split('\n').filter(Boolean)
    try {
      expect(hide.code).toBe(0)
      expect((await bareExec(NAME, 'command -v docker || echo none')).stdout.trim()).toBe('none')
      const r = await runDocBlock('setup-server', { HOST: bare.host, LOGIN: 'root' }, operator.env)
      expect(r.stdout).toContain('error: Docker is not installed. Install Docker Engine with the Compose v2 plugin')
      expect(r.stdout).toContain('Generated the deploy key')
      expect(r.stderr).toContain(`setup-server.sh: error: provisioning ${bare.host} failed (exit 1); the reason is above.`)
      expect(r.code).toBe(1)
      expect((await bareExec(NAME, 'getent passwd deploy || echo "no deploy user"; ls /etc/cron.d')).stdout).not.toMatch(/deploy:|openclaw/)
    } finally {
      for (const d of dockers) await bareExec(NAME, `mv ${d}.hidden ${d}`)
    }
  })

  test('the documented command turns the bare server into one the action deploys to on the first try', async () => {
    const setup = await runDocBlock('setup-server', { HOST: bare.host, LOGIN: 'root' }, operator.env)
    expect(setup.code).toBe(0)
    expect(setup.stdout).toContain('Using the deploy key') // generated by the refused run before
    expect(setup.stdout).toMatch(/created user deploy \(groups: deploy, docker\)/)
    const printed = parsePrinted(setup.stdout)
    entry = printed.entry
    knownHosts = printed.knownHosts
    expect(entry).toMatchObject({ name: 'acme-eu-1', host: bare.host, tenant: 'acme', region: 'eu-west' })
    expect(knownHosts).toMatch(new RegExp(`^${bare.host.replace(/\./g, '\\.')} ssh-ed25519 AAAA`))

    // the gateway token: generated on the server, 64 hex characters, never printed in full
    const env = await bareExec(NAME, `stat -c '%U %a' ${PROJECT}/.env && sed -n 's/^OPENCLAW_GATEWAY_TOKEN=//p' ${PROJECT}/.env`)
    const [owner, token] = env.stdout.trim().split('\n')
    expect(owner).toBe('deploy 600')
    expect(token).toMatch(/^[0-9a-f]{64}$/)
    expect(setup.stdout + setup.stderr).not.toContain(token)
    expect(setup.stdout).toContain(`token ${token.slice(0, 4)}…`)

    // the deploy user: docker group, no sudo, no password; the daily backup is scheduled
    const who = await bareExec(NAME, 'id -nG deploy; getent shadow deploy | cut -d: -f2; ls /etc/cron.d/; test -x /usr/local/bin/backup-openclaw.sh && echo installed')
    expect(who.stdout.split('\n')[0].split(' ').sort()).toEqual(['deploy', 'docker'])
    expect(who.stdout).toContain('\n*\n')
    expect(who.stdout).toContain('openclaw-backup-home-deploy-openclaw-prd')
    expect(who.stdout).toContain('installed')
    expect(setup.stdout).toContain(`ok       deploy can use Docker and the project in ${PROJECT} is valid`)

    const first = await deployAction({ image: fleet.images.v1 })
    expect(statuses(first)).toEqual(['deployed'])
    expect(first.code).toBe(0)
    expect(await healthOnBare()).toBe('v1')
  })

  test('a second run, as a sudo user, changes nothing and says so', async () => {
    const files = `sha256sum ${PROJECT}/.env ${PROJECT}/docker-compose.yml /home/deploy/.ssh/authorized_keys /etc/cron.d/openclaw-backup-*; stat -c '%n %U %a' ${PROJECT} ${PROJECT}/config`
    const before = await bareExec(NAME, files)
    const again = await runDocBlock('setup-server', { HOST: bare.host, LOGIN: bare.admin }, operator.env)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('Using the deploy key')
    expect(again.stdout).toContain('Nothing changed: this server was already provisioned.')
    expect(again.stdout).not.toContain('  changed  ')
    expect(parsePrinted(again.stdout)).toEqual({ entry, knownHosts })
    // .env now names the deployed image: the rerun leaves it (and its token) alone
    expect((await bareExec(NAME, files)).stdout).toBe(before.stdout)
  })

  test('the host keys it printed are the ones ssh-keyscan shows and the server holds', async () => {
    const scanned = await runDocBlock('verify-host-key', { HOST: bare.host }, operator.env, operator.home)
    expect(scanned.code).toBe(0)
    const console = await bareExec(NAME, docScript('host-key-on-console'))
    expect(console.code).toBe(0)
    const fingerprints = (text: string) => [...text.matchAll(/SHA256:[A-Za-z0-9+/]{43}/g)].map(m => m[0]).sort()
    const printed = [entry.hostKey].flat() as string[]
    expect(fingerprints(scanned.stdout)).toEqual([...printed].sort())
    expect(fingerprints(console.stdout)).toEqual([...printed].sort())

    // the file ssh-keyscan wrote (once its fingerprints are checked) is a known-hosts input on its own
    const status = await runAction({
      'servers-file': registryWith({ ...entry, hostKey: undefined }),
      'ssh-private-key': readFileSync(operator.deployKeyFile, 'utf8'),
      'known-hosts': readFileSync(join(operator.home, `${bare.host}.known_hosts`), 'utf8'),
      mode: 'status'
    })
    expect(statuses(status)).toEqual(['healthy'])
  })

  test('hardening: keys-only SSH and the firewall; the action still deploys; a rerun changes nothing', async () => {
    const passwordProbe = `ssh -F ${bare.sshConfigFile} -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive root@${bare.host} true`
    const portProbe = `timeout 3 bash -c 'exec 3<>/dev/tcp/${bare.host}/8080'`
    // something listening on a port the firewall is to close (busybox httpd goes to the background)
    expect((await bareExec(NAME, 'busybox httpd -p 8080 -h /tmp')).code).toBe(0)
    expect((await run('bash', ['-c', passwordProbe])).stderr).toContain('Permission denied (publickey,password)')
    expect((await run('bash', ['-c', portProbe])).code).toBe(0)

    const harden = await runDocBlock('harden', { HOST: bare.host }, operator.env)
    expect(harden.code).toBe(0)
    expect(harden.stdout).toContain('changed  SSH accepts keys only')
    expect(harden.stdout).toContain('changed  firewall (ufw) active: incoming denied except SSH on port 22')
    expect(harden.stdout).toContain('2 change(s) made.')

    expect((await run('bash', ['-c', passwordProbe])).stderr).toContain('Permission denied (publickey)')
    expect((await run('bash', ['-c', portProbe])).code).not.toBe(0)

    const v2 = await deployAction({ image: fleet.images.v2 })
    expect(statuses(v2)).toEqual(['deployed'])
    expect(await healthOnBare()).toBe('v2')

    const again = await runDocBlock('harden', { HOST: bare.host }, operator.env)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('Nothing changed: this server was already provisioned.')
  })

  test('rollback of one tenant, then the fleet health report', async () => {
    const back = await deployAction({ mode: 'rollback', tenants: 'acme' })
    expect(statuses(back)).toEqual(['deployed'])
    expect(await healthOnBare()).toBe('v1')
    const report = await deployAction({ mode: 'status' })
    expect(statuses(report)).toEqual(['healthy'])
    expect(report.summary).toContain('acme-eu-1')
  })
})

describe('backup-openclaw.sh', () => {
  test('the daily cron line makes an archive as the deploy user', async () => {
    // run the command of the cron.d line exactly as cron would: as its user, with its SHELL and PATH
    const cron = await bareExec(
      NAME,
      `line=$(grep -v '^#' /etc/cron.d/openclaw-backup-home-deploy-openclaw-prd | grep ' deploy ' | head -n 1)
       cmd=$(printf '%s\\n' "$line" | cut -d' ' -f7-)
       su -s /bin/bash deploy -c "PATH=/usr/local/bin:/usr/bin:/bin; $cmd" && cat ${BACKUPS}/backup.log && ls ${BACKUPS}`
    )
    expect(cron.code).toBe(0)
    expect(cron.stdout).toMatch(/backed up \/home\/deploy\/openclaw-prd to \/home\/deploy\/backups\/openclaw-prd\/openclaw-prd-\d{8}T\d{6}Z\.tar\.gz/)
  })

  test('back up, damage the config, restore by the documented procedure: byte-identical and healthy', async () => {
    const seed = await asDeploy(
      `set -e; cd ${PROJECT}; mkdir -p config/agents; printf '{"gateway":{"port":18789}}\\n' > config/openclaw.json
       printf 'be helpful\\n' > config/agents/main.md; chmod 640 config/agents/main.md`
    )
    expect(seed.code).toBe(0)
    const before = await asDeploy(SNAPSHOT)
    expect(before.stdout).toContain('config/agents/main.md f 640')

    const backup = await asDeploy(docScript('backup-now'))
    expect(backup.code).toBe(0)
    expect(backup.stdout).toContain(`backed up ${PROJECT} to ${BACKUPS}/openclaw-prd-`)
    // The archive this backup wrote, by the name it printed: an earlier test's archive can share its
    // second, and then this one is named …Z-2.tar.gz.
    const archive = new RegExp(`backed up ${PROJECT} to ${BACKUPS}/(openclaw-prd-\\d{8}T\\d{6}Z(?:-\\d+)?\\.tar\\.gz)`).exec(backup.stdout)?.[1]
    expect(archive).toBeDefined()
    expect(backup.stdout).toContain(`${archive}\t`) // and the documented list shows it

    const damage = await asDeploy(`set -e; cd ${PROJECT}; rm -rf config/agents; echo broken > config/openclaw.json; echo 'OPENCLAW_IMAGE=' >> .env; : > docker-compose.yml`)
    expect(damage.code).toBe(0)
    expect((await asDeploy(SNAPSHOT)).stdout).not.toBe(before.stdout)

    const restore = await asDeploy(docScript('restore', { ARCHIVE: archive! }))
    expect(restore.code).toBe(0)
    expect(restore.stdout).toContain(`saved the current state first: ${BACKUPS}/openclaw-prd-`)
    expect((await asDeploy(SNAPSHOT)).stdout).toBe(before.stdout)
    expect(await healthOnBare()).toBe('v1')
    expect((await bareExec(NAME, `test -e ${PROJECT}/.openclaw-deploy/lock && echo locked || echo free`)).stdout.trim()).toBe('free')
  })

  test('holds the deploy lock: a deploy meanwhile is locked out, naming the backup; a backup killed outright leaves a lock the next deploy takes over', async () => {
    // a tar that stalls when it writes an archive, so the backup is caught halfway; in a session of its own, to be killed whole
    const started = await asDeploy(
      `set -e; rm -rf /tmp/slow-tar; mkdir /tmp/slow-tar
       printf '#!/bin/sh\\ncase " $* " in *" -czf "*) touch /tmp/slow-tar/started; sleep 300 ;; esac\\nexec %s "$@"\\n' "$(command -v tar)" > /tmp/slow-tar/tar
       chmod +x /tmp/slow-tar/tar
       PATH=/tmp/slow-tar:$PATH OPENCLAW_BACKUP_LOCK_LEASE=10 OPENCLAW_BACKUP_LOCK_RENEW=2 setsid backup-openclaw.sh </dev/null >/tmp/slow-tar/log 2>&1 &
       echo $!
       for i in $(seq 100); do [ -e /tmp/slow-tar/started ] && exit 0; sleep 0.1; done; exit 1`
    )
    expect(started.code).toBe(0)
    const pid = started.stdout.trim()
    try {
      const during = await deployAction({ image: fleet.images.v1, 'lock-timeout': '0' })
      expect(statuses(during)).toEqual(['locked'])
      const [result] = JSON.parse(during.outputs.results ?? '[]') as Array<{ error?: string }>
      expect(result?.error).toMatch(/^another deploy holds the lock \(backup-openclaw\.sh backup by deploy on \S+ pid \d+ since \S+\)/)
      expect(result?.error).toContain('its lease ends in')

      expect((await asDeploy(`kill -KILL -- -${pid}`)).code).toBe(0)
      const [holder, expires] = (await asDeploy(`cat ${PROJECT}/.openclaw-deploy/lock/holder`)).stdout.split('\n')
      expect(holder).toMatch(/^backup-openclaw\.sh backup by deploy /)
      expect(expires).toMatch(/^expires=\d+$/)
      const next = await deployAction({ image: fleet.images.v1, 'lock-timeout': '60' })
      expect(['deployed', 'unchanged']).toContain(statuses(next)[0])
      // (named as other runs see a holder: without its token)
      expect(next.stdout).toContain(`took over the deploy lock of ${holder!.replace(/ token=\S+/, '')}, whose lease had expired`)
      expect((await bareExec(NAME, `test -e ${PROJECT}/.openclaw-deploy/lock && echo locked || echo free`)).stdout.trim()).toBe('free')
    } finally {
      await asDeploy(`kill -KILL -- -${pid} 2>/dev/null; rm -rf /tmp/slow-tar ${BACKUPS}/.openclaw-prd-*.partial`)
    }
  })

  test('keeps the last 7 days of archives and nothing else of its own', async () => {
    const ago = (hours: number) => `$(date -u -d '${hours} hours ago' +%Y%m%dT%H%M%SZ)`
    const setup = await asDeploy(
      `set -e; cd ${BACKUPS}; rm -f openclaw-prd-*.tar.gz
       for h in 24 144 167 169 192 720; do : > "openclaw-prd-$(date -u -d "$h hours ago" +%Y%m%dT%H%M%SZ).tar.gz"; done
       : > notes.txt; : > "other-project-${ago(720)}.tar.gz"`
    )
    expect(setup.code).toBe(0)
    const backup = await asDeploy('backup-openclaw.sh')
    expect(backup.code).toBe(0)
    expect(backup.stdout).toContain(`kept 4 archive(s) of the last 7 days in ${BACKUPS}; removed 3 older one(s)`)
    const left = await asDeploy(`cd ${BACKUPS} && ls`)
    expect(left.stdout).toContain('notes.txt')
    expect(left.stdout).toMatch(/other-project-\d{8}T\d{6}Z\.tar\.gz/)
    expect(left.stdout.split('\n').filter(l => /^openclaw-prd-.*\.tar\.gz$/.test(l))).toHaveLength(4)
  })

  test('fails with a reason: unreadable folder, full disk, damaged archive, a deploy holding the lock', async () => {
    const unreadable = await asDeploy(`mkdir -p ${PROJECT}/config/private && chmod 000 ${PROJECT}/config/private && backup-openclaw.sh`)
    expect(unreadable.code).toBe(1)
    expect(unreadable.stderr).toContain(`cannot read ${PROJECT}/config/private as deploy`)
    await asDeploy(`chmod 700 ${PROJECT}/config/private && rmdir ${PROJECT}/config/private`)

    // a full disk: a 64 KiB file system over the backup folder, and 1 MiB that does not compress
    const full = await bareExec(NAME, `mount -t tmpfs -o size=64k,mode=700,uid=$(id -u deploy),gid=$(id -g deploy) full ${BACKUPS}`)
    expect(full.code).toBe(0)
    try {
      const noSpace = await asDeploy(`head -c 1048576 /dev/urandom > ${PROJECT}/config/blob && backup-openclaw.sh; rc=$?; ls -A ${BACKUPS}; exit $rc`)
      expect(noSpace.code).toBe(1)
      expect(noSpace.stderr).toMatch(/cannot write the backup to \/home\/deploy\/backups\/openclaw-prd: .*No space left on device/)
      expect(noSpace.stdout.trim()).toBe('') // no partial archive left behind
    } finally {
      await bareExec(NAME, `umount ${BACKUPS}`)
      await asDeploy(`rm -f ${PROJECT}/config/blob`)
    }

    const damaged = await asDeploy(`printf 'not an archive' > /tmp/broken.tar.gz && backup-openclaw.sh restore /tmp/broken.tar.gz`)
    expect(damaged.code).toBe(1)
    expect(damaged.stderr).toContain('/tmp/broken.tar.gz is not a readable backup archive: gzip: stdin: not in gzip format')

    const latest = (await asDeploy('backup-openclaw.sh list | head -n 1 | cut -f1')).stdout.trim()
    const locked = await asDeploy(
      `mkdir -p ${PROJECT}/.openclaw-deploy/lock && echo 'run 42 by octo' > ${PROJECT}/.openclaw-deploy/lock/holder
       backup-openclaw.sh restore --lock-wait 2 ${latest}; rc=$?; rm -rf ${PROJECT}/.openclaw-deploy/lock; exit $rc`
    )
    expect(locked.code).toBe(1)
    expect(locked.stderr).toContain(`a deploy holds the lock of ${PROJECT} (held by: run 42 by octo); waiting up to 2s for it`)
    expect(locked.stderr).toContain(`a deploy holds the lock of ${PROJECT} (held by: run 42 by octo); try again once it has finished`)

    const noProject = await asDeploy('backup-openclaw.sh /home/deploy/nothing-here')
    expect(noProject.code).toBe(1)
    expect(noProject.stderr).toContain('no project folder at /home/deploy/nothing-here')
  })
})
