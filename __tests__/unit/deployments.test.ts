import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals'
import type { ServerResult } from '../../src/deploy/result.js'
import type { Server } from '../../src/registry/types.js'
import * as core from '../__fixtures__/core.js'

jest.unstable_mockModule('@actions/core', () => core)
const { readSettings } = await import('../../src/settings.js')

interface Request {
  method: string
  url: string
  auth: string
  body: Record<string, unknown>
}

// A local stand-in for the GitHub API: records requests, answers like GitHub does.
let api: HttpServer
const requests: Request[] = []
let nextId = 100
let failCreateFor = ''
/** The stand-in takes requests and never answers them, like a GitHub API that hangs. */
let hang = false
let TenantDeployments: typeof import('../../src/report/deployments.js').TenantDeployments

beforeAll(async () => {
  api = createServer((req, res) => {
    let data = ''
    req.on('data', c => (data += c))
    req.on('end', () => {
      const body = data ? (JSON.parse(data) as Record<string, unknown>) : {}
      requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization ?? '', body })
      if (hang) return
      res.setHeader('content-type', 'application/json')
      if (req.url!.endsWith('/deployments') && String(body.environment).endsWith(failCreateFor || '\0')) {
        res.statusCode = 422
        return res.end(JSON.stringify({ message: 'Conflict merging main into topic.' }))
      }
      res.statusCode = 201
      res.end(JSON.stringify({ id: req.url!.endsWith('/deployments') ? nextId++ : 1 }))
    })
  })
  await new Promise<void>(r => api.listen(0, '127.0.0.1', r))
  // @actions/github reads the API address when it is first loaded.
  process.env.GITHUB_API_URL = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
  ;({ TenantDeployments } = await import('../../src/report/deployments.js'))
})

beforeEach(() => {
  jest.clearAllMocks()
})

afterAll(() => {
  api.closeAllConnections()
  return new Promise<void>(r => api.close(() => r()))
})

const env = { GITHUB_REPOSITORY: 'acme/infra', GITHUB_SHA: 'abc123', GITHUB_RUN_ID: '77', GITHUB_SERVER_URL: 'https://github.com' }
const server = (name: string, tenant: string) => ({ name, tenant }) as Server
const result = (name: string, tenant: string, status: ServerResult['status']): ServerResult => ({ server: server(name, tenant), status, durationMs: 1, log: [] })
const settings = (inputs: Record<string, string>) => readSettings(n => ({ 'ssh-private-key': 'k', 'github-token': 'ghs_token123456', image: 'reg/app:2', ...inputs })[n] ?? '')

describe('GitHub deployments', () => {
  it('makes no API call without an environment', async () => {
    requests.length = 0
    expect(await TenantDeployments.start(settings({}), ['acme'], env)).toBeUndefined()
    expect(requests).toEqual([])
  })

  it('records one deployment per tenant: in_progress, then success or failure with the log URL', async () => {
    requests.length = 0
    const deployments = await TenantDeployments.start(settings({ environment: 'production' }), ['acme', 'globex', 'acme'], env)
    await deployments!.finish([result('a1', 'acme', 'deployed'), result('a2', 'acme', 'unchanged'), result('g1', 'globex', 'rolled-back')])
    expect(requests.map(r => `${r.method} ${r.url} ${String(r.body.environment ?? r.body.state)}`)).toEqual([
      'POST /repos/acme/infra/deployments production/acme',
      'POST /repos/acme/infra/deployments/100/statuses in_progress',
      'POST /repos/acme/infra/deployments production/globex',
      'POST /repos/acme/infra/deployments/101/statuses in_progress',
      'POST /repos/acme/infra/deployments/100/statuses success',
      'POST /repos/acme/infra/deployments/101/statuses failure'
    ])
    expect(requests.every(r => r.auth === 'token ghs_token123456')).toBe(true)
    expect(requests[0]!.body).toMatchObject({ ref: 'abc123', required_contexts: [], auto_merge: false, payload: { tenant: 'acme', image: 'reg/app:2', mode: 'deploy' } })
    expect(requests[5]!.body).toMatchObject({ log_url: 'https://github.com/acme/infra/actions/runs/77', description: '1 of 1 servers did not deploy: g1 rolled-back' })
    expect(core.warning).not.toHaveBeenCalled()
  })

  it('goes on without the tenant whose deployment GitHub refuses', async () => {
    requests.length = 0
    failCreateFor = '/globex'
    const deployments = await TenantDeployments.start(settings({ environment: 'production' }), ['acme', 'globex'], env)
    await deployments!.finish([result('a1', 'acme', 'deployed'), result('g1', 'globex', 'deployed')])
    failCreateFor = ''
    expect(requests.filter(r => r.url.includes('/statuses')).map(r => r.url)).toEqual(['/repos/acme/infra/deployments/102/statuses', '/repos/acme/infra/deployments/102/statuses'])
    expect(core.warning.mock.calls).toEqual([['Could not record a GitHub deployment for tenant globex: Conflict merging main into topic.']])
  })

  it('goes on within the timeout when the API never answers, and stops calling it', async () => {
    requests.length = 0
    hang = true
    const started = Date.now()
    try {
      const deployments = await TenantDeployments.start(settings({ environment: 'production' }), ['acme', 'globex', 'initech'], env, 300)
      await deployments!.finish([result('a1', 'acme', 'deployed'), result('g1', 'globex', 'deployed'), result('i1', 'initech', 'deployed')])
    } finally {
      hang = false
    }
    // one call waited out its timeout; the rest were not sent to an API that does not answer
    expect(Date.now() - started).toBeLessThan(3000)
    expect(requests.map(r => `${r.method} ${r.url}`)).toEqual(['POST /repos/acme/infra/deployments'])
    expect(core.warning.mock.calls).toEqual([
      ['Could not record a GitHub deployment for tenant acme: the GitHub API did not answer within 0.3s; no further GitHub deployment updates are sent in this run.']
    ])
  })
})
