import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { parseKnownHosts } from '../remote/host-keys.js'
import { JumpHosts } from '../remote/jump-hosts.js'
import { connect } from '../remote/ssh.js'
import type { Server } from '../registry/types.js'
import type { Settings } from '../settings.js'
import type { RunContext } from './pipeline.js'

/** Who this run is, in the lock note and the history line. Read from the runner's environment. */
export function describeRun(env: NodeJS.ProcessEnv = process.env): { holder: string; label: string; token: string } {
  const token = randomBytes(8).toString('hex')
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
  const run = describeRun()
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
    connect: (server: Server, abort: AbortSignal) =>
      connect({
        host: server.host,
        port: server.port,
        user: server.user,
        privateKey: settings.sshPrivateKey,
        passphrase: settings.sshPassphrase,
        hostKeyPolicy: { knownHosts, hostKeys: server.hostKeys, strict: settings.strictHostKeyChecking },
        connectTimeout: settings.connectTimeout,
        signal: abort,
        via: server.jump ? jumpHosts.route(server.jump, server.host, server.port, abort) : undefined
      }),
    close: () => jumpHosts.close()
  }
}
