// The operator kit's shell scripts: strict mode, shellcheck-clean, and clear errors for bad
// arguments and a server that cannot be reached (on loopback only). What they do on a server is
// tested on the rig (__tests__/e2e/operator-kit.test.ts).
import { afterAll, describe, expect, test } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'

const root = resolve(dirname(new URL(import.meta.url).pathname), '..', '..')
const kit = join(root, 'scripts', 'deployment')
const setupServer = join(kit, 'setup-server.sh')
const backup = join(kit, 'backup-openclaw.sh')
const scripts = [
  ...readdirSync(kit, { recursive: true, encoding: 'utf8' })
    .filter(f => f.endsWith('.sh'))
    .map(f => join(kit, f)),
  join(root, '__tests__', 'rig', 'bare-server.sh')
].sort()

const homes: string[] = []
afterAll(() => homes.forEach(home => rmSync(home, { recursive: true, force: true })))

function sh(args: string[], env: NodeJS.ProcessEnv = {}) {
  const home = mkdtempSync(join(tmpdir(), 'openclaw-kit-home-'))
  homes.push(home)
  const r = spawnSync('bash', args, { encoding: 'utf8', env: { ...process.env, HOME: home, ...env }, timeout: 60_000, input: '' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, home }
}

describe('every script', () => {
  test('there are the scripts of the kit', () => {
    expect(scripts.map(f => relative(root, f))).toEqual([
      '__tests__/rig/bare-server.sh',
      'scripts/deployment/backup-openclaw.sh',
      'scripts/deployment/server/provision.sh',
      'scripts/deployment/setup-server.sh'
    ])
  })

  test.each(scripts.map(f => [relative(root, f), f]))('%s runs in strict mode and parses', (_name, file) => {
    const lines = readFileSync(file, 'utf8').split('\n')
    expect(lines[0]).toBe('#!/usr/bin/env bash')
    const firstCommand = lines.find(l => l.trim() && !l.startsWith('#'))
    expect(firstCommand).toBe('set -euo pipefail')
    expect(spawnSync('bash', ['-n', file]).status).toBe(0)
  })

  test('shellcheck finds nothing', () => {
    const probe = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' })
    if (probe.error || probe.status !== 0) {
      // CI installs it (apt-get install shellcheck); on a workstation without it, say so loudly
      if (process.env.CI === 'true') throw new Error('shellcheck is not installed: apt-get install -y shellcheck')
      console.warn('shellcheck is not installed: the operator kit scripts were not linted (apt-get install -y shellcheck)')
      return
    }
    const r = spawnSync('shellcheck', ['--external-sources', '--severity=style', ...scripts], { encoding: 'utf8', cwd: root })
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})

describe('setup-server.sh', () => {
  test('--help explains the usage and exits 0', () => {
    const r = sh([setupServer, '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('setup-server.sh [options] [LOGIN@]HOST [PORT]')
    expect(r.stdout).toContain('--disable-password-login')
    expect(r.stdout).not.toContain('set -euo pipefail')
  })

  test.each([
    [[], 'which server? give [LOGIN@]HOST [PORT]'],
    [['https://203.0.113.10'], "'https://203.0.113.10' is not a hostname or IP address"],
    [['203.0.113.10:2222'], "'203.0.113.10:2222' is not a hostname or IP address"],
    [['203.0.113.10', 'ssh'], "the port must be a number from 1 to 65535, not 'ssh'"],
    [['203.0.113.10', '70000'], "the port must be a number from 1 to 65535, not '70000'"],
    [['203.0.113.10', '22', 'extra'], 'too many arguments: 203.0.113.10 22 extra'],
    [['Root!@203.0.113.10'], "'Root!' is not a user name to log in as"],
    [['--tenant', 'Acme Corp', '203.0.113.10'], "--tenant: 'Acme Corp' must be 1 to 63 lower-case letters"],
    [['--path', 'openclaw', '203.0.113.10'], "--path: 'openclaw' must be an absolute folder"],
    [['--backup-time', '3am', '203.0.113.10'], "--backup-time: '3am' is not HH:MM"],
    [['--name'], '--name needs a value'],
    [['--colour', '203.0.113.10'], 'unknown option: --colour']
  ])('%j is refused before any connection, with exit 2', (args, message) => {
    const r = sh([setupServer, ...args])
    expect(r.stderr).toContain(message)
    expect(r.stderr).toContain("Run 'setup-server.sh --help' for usage.")
    expect(r.code).toBe(2)
  })

  test("a host that does not answer gives exit 3 and ssh's reason, and leaves no key behind", async () => {
    // a loopback port that was free a moment ago: nothing listens there
    const port = await new Promise<number>(done => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number }
        server.close(() => done(port))
      })
    })
    const r = sh([setupServer, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '127.0.0.1', String(port)])
    expect(r.stderr).toContain(`setup-server.sh: cannot log in to 127.0.0.1 port ${port} as root: ssh: connect to host 127.0.0.1 port ${port}: Connection refused`)
    expect(r.code).toBe(3)
    expect(readdirSync(r.home)).toEqual([])
  })
})

describe('backup-openclaw.sh', () => {
  test('--help explains backup, list and restore and exits 0', () => {
    const r = sh([backup, '--help'])
    expect(r.code).toBe(0)
    for (const usage of ['backup-openclaw.sh [backup]', 'backup-openclaw.sh list', 'backup-openclaw.sh restore']) expect(r.stdout).toContain(usage)
  })

  test.each([
    [['--keep-days', '0'], "--keep-days must be a whole number of days from 1 to 3650, not '0'"],
    [['--keep-days', 'week'], "--keep-days must be a whole number of days from 1 to 3650, not 'week'"],
    [['--dir'], '--dir needs a folder'],
    [['--lock-wait', 'soon'], "--lock-wait must be a whole number of seconds from 0 to 86400, not 'soon'"],
    [['--verbose'], 'unknown option: --verbose'],
    [['restore'], "restore needs the archive to restore (see 'backup-openclaw.sh list')"],
    [['/srv/a', '/srv/b'], 'too many arguments: /srv/a /srv/b']
  ])('%j is refused with exit 2', (args, message) => {
    const r = sh([backup, ...args])
    expect(r.stderr).toContain(message)
    expect(r.code).toBe(2)
  })

  test('a missing project folder is an error with exit 1', () => {
    const r = sh([backup, '/nonexistent/openclaw-prd'])
    expect(r.stderr).toContain('backup-openclaw.sh: error: no project folder at /nonexistent/openclaw-prd')
    expect(r.code).toBe(1)
  })
})
