// Where a registry login could be left or shown, for the tests that deploy private images (directly
// and through a bastion): the password in any output, and files on a server that hold it.
import { expect } from '@jest/globals'
import { server, serverExec, type ActionRun, type Fleet } from '../rig/fleet.js'

/** The forms a registry password could show in: as itself, base64, and the base64 `user:password` Docker stores. */
const passwordForms = (username: string, password: string) => [password, Buffer.from(password).toString('base64'), Buffer.from(`${username}:${password}`).toString('base64')]

/** Every place a run shows anything (the masking commands aside), for the password in any form. */
export function expectNoPassword(run: ActionRun, username: string, password: string): void {
  const shown = [run.stdout.replace(/^::add-mask::.*$/gm, ''), run.stderr, run.summary, JSON.stringify(run.outputs)].join('\n')
  for (const form of passwordForms(username, password)) expect(shown.includes(form) ? form : 'absent').toBe('absent')
}

/** Files on a server that hold the password or a Docker login: its home, /tmp (but the rig's own folder), the deploy folder. */
export async function credentialsLeft(fleet: Fleet, name: string, username: string, password: string): Promise<string> {
  const s = server(fleet, name)
  const patterns = passwordForms(username, password)
    .map(form => `-e '${form}'`)
    .join(' ')
  const r = await serverExec(
    name,
    `{ ls -d /tmp/openclaw-docker-config.* "${s.home}/.docker/config.json" 2>/dev/null; grep -rlF ${patterns} "${s.home}" "${s.path}" /tmp 2>/dev/null; } | grep -v '^/tmp/openclaw-rig/' || true`
  )
  return r.stdout.trim()
}
