import { createHmac, randomBytes } from 'node:crypto'
import os from 'node:os'
import { parseKnownHosts } from '../remote/host-keys.js'
import { JumpHosts } from '../remote/jump-hosts.js'
import { connect, type RemoteShell } from '../remote/ssh.js'
import type { Server } from '../registry/types.js'
import type { Settings } from '../settings.js'

/** What a server job needs from the run around it. */
export interface RunContext {
  settings: Settings
  /**
   * Opens the server's connection (real SSH, or a fake in unit tests), with `ssh-private-key`, or with
   * `key` (mode rotate-key logs in with the new key too: the same host key checks and jump route).
   */
  connect(server: Server, signal: AbortSignal, key?: { privateKey: string; passphrase: string }): Promise<RemoteShell>
  /** Written into the lock so others see who holds it; must contain `token=<lockToken>`. */
  lockHolder: string
  lockToken: string
  /** Describes this run in the history line (run URL, actor). */
  runLabel: string
  /** Aborted on SIGINT/SIGTERM: start nothing new, roll back what is half-switched. */
  signal: AbortSignal
  onProgress?(server: Server, state: string): void
}

/**
 * The token this run's locks carry (in the lock note, on the server only). In GitHub Actions it is
 * derived, not random, because the post step (src/post.ts) must release the locks of a main step
 * that was killed (SIGKILL) before it could save anything. It names one step of one job of one run
 * attempt: GITHUB_ACTION tells two uses of the action in a job apart (the runner gives the post step
 * the main step's), and the job's runner (RUNNER_NAME, RUNNER_TRACKING_ID) the legs of a matrix,
 * which share GITHUB_JOB. Those names are all public (the run's log shows them), so they are keyed
 * with the SSH key, which both steps get as an input and nobody reading the log has. Elsewhere
 * (no GITHUB_RUN_ID) the token is random, as no second step will look for it.
 */
export function lockToken(env: NodeJS.ProcessEnv, secret: string): string {
  if (!env.GITHUB_RUN_ID) return randomBytes(8).toString('hex')
  const step = [env.GITHUB_RUN_ID, env.GITHUB_RUN_ATTEMPT, env.GITHUB_JOB, env.GITHUB_ACTION, env.RUNNER_NAME, env.RUNNER_TRACKING_ID].map(part => part ?? '')
  return createHmac('sha256', secret)
    .update(`openclaw-deploy lock token\n${step.join('\n')}`)
    .digest('hex')
    .slice(0, 16)
}

/** Who this run is, in the lock note and the history line. Read from the runner's environment. */
export function describeRun(env: NodeJS.ProcessEnv = process.env, secret = ''): { holder: string; label: string; token: string } {
  const token = lockToken(env, secret)
  const url = env.GITHUB_SERVER_URL && env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID ? `${env.GITHUB_SERVER_URL}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}` : ''
  const who = env.GITHUB_ACTOR ? `by ${env.GITHUB_ACTOR}` : `by ${os.userInfo().username}@${os.hostname()}`
  const label = [url || 'local run', who, env.GITHUB_SHA ? `commit ${env.GITHUB_SHA.slice(0, 12)}` : ''].filter(Boolean).join(' ')
  return { token, label, holder: `${label} since ${new Date().toISOString()} token=${token}` }
}

/** The run's context, and what it holds open across servers (the jump hosts' connections). */
export interface OpenRunContext extends RunContext {
  /** Closes what the run opened for all its servers; call once every server is done. */
  close(): void
}

export function createRunContext(settings: Settings, signal: AbortSignal, onProgress?: RunContext['onProgress']): OpenRunContext {
  const knownHosts = parseKnownHosts(settings.knownHosts)
  const run = describeRun(process.env, settings.sshPrivateKey)
  const jumpHosts = new JumpHosts({
    privateKey: settings.jumpPrivateKey || settings.sshPrivateKey,
    passphrase: settings.sshPassphrase,
    knownHosts,
    strict: settings.strictHostKeyChecking,
    connectTimeout: settings.connectTimeout
  })
  return {
    settings,
    signal,
    onProgress,
    lockHolder: run.holder,
    lockToken: run.token,
    runLabel: run.label,
    connect: (server: Server, abort: AbortSignal, key = { privateKey: settings.sshPrivateKey, passphrase: settings.sshPassphrase }) =>
      connect({
        host: server.host,
        port: server.port,
        user: server.user,
        privateKey: key.privateKey,
        passphrase: key.passphrase,
        hostKeyPolicy: { knownHosts, hostKeys: server.hostKeys, strict: settings.strictHostKeyChecking },
        connectTimeout: settings.connectTimeout,
        signal: abort,
        via: server.jump ? jumpHosts.route(server.jump, server.host, server.port, abort) : undefined
      }),
    close: () => jumpHosts.close()
  }
}
