/**
 * GitHub deployments: with the `environment` input, one deployment per tenant (environment
 * `<environment>/<tenant>`), marked in_progress when its servers start and success or failure when
 * they end, linking the run's log. The API is a record, never a gate: when it fails the deploy goes
 * on and a warning says why; every call has a timeout, and once one times out no further call is made.
 */
import * as core from '@actions/core'
import type { getOctokit } from '@actions/github'
import { isSuccess, type ServerResult } from '../deploy/result.js'
import type { Settings } from '../settings.js'

type Octokit = ReturnType<typeof getOctokit>

/** GitHub answers these calls in well under a second; a run must not wait on a hanging API. */
export const API_TIMEOUT_MS = 10_000
type State = 'in_progress' | 'success' | 'failure'

interface Repo {
  owner: string
  repo: string
}

export class TenantDeployments {
  /** Set once a call timed out: the API is not answering, so no further call waits on it. */
  private unanswered = false

  private constructor(
    private readonly octokit: Octokit,
    private readonly repo: Repo,
    private readonly logUrl: string,
    private readonly timeoutMs: number,
    /** Deployment id per tenant (tenants whose creation failed are absent). */
    private readonly ids: Map<string, number>
  ) {}

  /** Creates the deployments (in_progress); undefined when `environment` is not set. */
  static async start(settings: Settings, tenants: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = API_TIMEOUT_MS): Promise<TenantDeployments | undefined> {
    // (a key rotation deploys nothing to a tenant)
    if (!settings.environment || settings.dryRun || settings.mode === 'status' || settings.mode === 'rotate-key') return undefined
    const [owner, repo] = (env.GITHUB_REPOSITORY ?? '').split('/')
    if (!owner || !repo || !env.GITHUB_SHA || !settings.githubToken) {
      core.warning('Input "environment" is set but GITHUB_REPOSITORY, GITHUB_SHA or github-token is missing: no GitHub deployment is recorded.')
      return undefined
    }
    // Loaded only here: the Octokit client is a large part of the bundle, and most runs never need it.
    const { getOctokit } = await import('@actions/github')
    const octokit = getOctokit(settings.githubToken)
    const logUrl = `${env.GITHUB_SERVER_URL ?? 'https://github.com'}/${owner}/${repo}/actions/runs/${env.GITHUB_RUN_ID ?? ''}`
    const ids = new Map<string, number>()
    const self = new TenantDeployments(octokit, { owner, repo }, logUrl, timeoutMs, ids)
    for (const tenant of [...new Set(tenants)]) {
      const id = await self.call(`Could not record a GitHub deployment for tenant ${tenant}`, async request => {
        const created = await octokit.rest.repos.createDeployment({
          ...self.repo,
          ref: env.GITHUB_SHA!,
          environment: `${settings.environment}/${tenant}`,
          description: `${settings.mode} ${settings.image || 'current image'} to ${tenant}`.slice(0, 140),
          auto_merge: false,
          required_contexts: [],
          payload: { tenant, image: settings.image, mode: settings.mode },
          request
        })
        if (created.status !== 201 || !('id' in created.data)) throw new Error(`GitHub answered ${created.status}`)
        return created.data.id
      })
      if (id === undefined) continue
      ids.set(tenant, id)
      await self.setState(tenant, 'in_progress', `${settings.mode} started`)
    }
    return self
  }

  /** Marks each tenant success (every server deployed or unchanged) or failure. */
  async finish(results: ServerResult[]): Promise<void> {
    for (const tenant of this.ids.keys()) {
      const mine = results.filter(r => r.server.tenant === tenant)
      const bad = mine.filter(r => !isSuccess(r))
      const description = bad.length
        ? `${bad.length} of ${mine.length} servers did not deploy: ${bad.map(r => `${r.server.name} ${r.status}`).join(', ')}`
        : `${mine.length} server${mine.length === 1 ? '' : 's'} deployed`
      await this.setState(tenant, bad.length ? 'failure' : 'success', description)
    }
  }

  private async setState(tenant: string, state: State, description: string): Promise<void> {
    const id = this.ids.get(tenant)
    if (id === undefined) return
    await this.call(`Could not set the GitHub deployment of tenant ${tenant} to ${state}`, request =>
      this.octokit.rest.repos.createDeploymentStatus({
        ...this.repo,
        deployment_id: id,
        state,
        log_url: this.logUrl,
        description: description.slice(0, 140),
        auto_inactive: true,
        request
      })
    )
  }

  /** One API call under a timeout; a failure becomes a warning and undefined. */
  private async call<T>(failure: string, work: (request: { signal: AbortSignal }) => Promise<T>): Promise<T | undefined> {
    if (this.unanswered) return undefined
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      return await work({ signal })
    } catch (error) {
      if (signal.aborted) {
        this.unanswered = true
        core.warning(`${failure}: the GitHub API did not answer within ${this.timeoutMs / 1000}s; no further GitHub deployment updates are sent in this run.`)
      } else {
        core.warning(`${failure}: ${error instanceof Error ? error.message : String(error)}`)
      }
      return undefined
    }
  }
}
