import { describe, expect, it } from '@jest/globals'
import type { ServerResult, Status } from '../../src/deploy/result.js'
import type { Server } from '../../src/registry/types.js'
import { renderSummary } from '../../src/report/report.js'
import { readSettings } from '../../src/settings.js'

const settings = readSettings(n => ({ 'ssh-private-key': 'k', image: 'ghcr.io/acme/openclaw:1.2.3' })[n] ?? '')
const env = { GITHUB_SHA: '0123456789abcdef0123456789' }

function result(i: number, status: Status, extra: Partial<ServerResult> = {}): ServerResult {
  const server = { name: `gw-${i}`, tenant: `tenant-${i % 7}`, region: 'eu-west', host: `10.0.${i >> 8}.${i & 255}` } as Server
  return { server, status, durationMs: 12_345, previousImage: 'ghcr.io/acme/openclaw:1.2.2', deployedImage: 'ghcr.io/acme/openclaw:1.2.3', previousImageId: 'sha256:aaaaaaaaaaaaaaaa', deployedImageId: 'sha256:bbbbbbbbbbbbbbbb', health: 'HTTP 200; gateway:running:false:0', log: [], ...extra }
}

describe('job summary', () => {
  it('has a heading with image and commit, counts, and a row per server', () => {
    const md = renderSummary([result(1, 'deployed'), result(2, 'rolled-back', { error: 'not healthy', failedStep: 'health', failedOutput: 'http=500' })], settings, env)
    expect(md).toContain('## OpenClaw deploy of `ghcr.io/acme/openclaw:1.2.3` at commit `0123456789ab`')
    expect(md).toContain('2 servers: ✅ 1 deployed · ↩️ 1 rolled-back')
    expect(md).toContain('| tenant-1 | gw-1 | eu-west | ✅ deployed | ghcr.io/acme/openclaw:1.2.2 `aaaaaaaaaaaa` → ghcr.io/acme/openclaw:1.2.3 `bbbbbbbbbbbb` | HTTP 200; gateway:running:false:0 | 12.3s |')
    expect(md).toContain('<details><summary>↩️ gw-2 (tenant-2): rolled-back at health</summary>')
    expect(md).toContain('http=500')
  })

  it('escapes what it shows, so an error message cannot break the table or inject HTML', () => {
    const md = renderSummary([result(1, 'failed', { error: '<img src=x> | evil\nline', failedOutput: '```\n</details>' })], settings, env)
    expect(md).toContain('&lt;img src=x&gt; \\| evil line')
    expect(md).not.toContain('<img')
    expect(md.split('</details>')).toHaveLength(2)
  })

  it('stays under the 1 MiB limit for 500 failed servers with long output, keeping the counts', () => {
    const big = 'x'.repeat(200) + '\n'
    const results = Array.from({ length: 500 }, (_, i) => result(i, 'failed', { error: 'e'.repeat(300), failedStep: 'pull', failedOutput: big.repeat(20) }))
    const md = renderSummary(results, settings, env)
    expect(Buffer.byteLength(md)).toBeLessThan(1024 * 1024)
    expect(md).toContain('500 servers: ❌ 500 failed')
    expect(md.match(/^\| tenant-/gm)).toHaveLength(500)
    expect(md).toMatch(/_Details of \d+ more failed servers are in the step log._/)
  })
})
