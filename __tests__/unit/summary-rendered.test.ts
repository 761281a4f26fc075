// The job summary the way a person sees it: rendered by a GitHub-flavoured Markdown renderer
// (micromark with its GFM extension, which follows the CommonMark and GFM specs that GitHub's
// cmark-gfm implements), with raw HTML let through as GitHub lets through <details>/<summary>/<pre>.
// Server text here is hostile; the test reads the visible text and the links a reader would get.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, jest } from '@jest/globals'
import { micromark } from 'micromark'
import { gfm, gfmHtml } from 'micromark-extension-gfm'
import type { ServerResult, Status } from '../../src/deploy/result.js'
import type { Server } from '../../src/registry/types.js'
import * as core from '../__fixtures__/core.js'

// (reading settings masks the key: a workflow command on stdout with the real module)
jest.unstable_mockModule('@actions/core', () => core)
const { renderSummary } = await import('../../src/report/report.js')
const { multiLine, singleLine } = await import('../../src/untrusted.js')
const { readSettings } = await import('../../src/settings.js')

const WJ = '\u2060'
const env = { GITHUB_SHA: '0123456789abcdef0123456789', GITHUB_EVENT_NAME: 'push', GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/infra' }
const settingsFor = (inputs: Record<string, string>) => readSettings(n => ({ 'ssh-private-key': 'k', ...inputs })[n] ?? '')

/** Everything a compromised tenant might put in a field, in one string. */
const HOSTILE = [
  'oops\r::error title=x::forged\n::stop-commands::x %0A',
  '\u001b[31mred\u001b[0m',
  '[click](https://evil.example/a) ![pixel](https://evil.example/p.png) <https://evil.example/b>',
  'https://evil.example/c www.evil.example mail@evil.example @octocat',
  '<img src=x onerror=alert(1)> <a href="https://evil.example/d">a</a> <details open><summary>s</summary></details></pre>',
  '| forged | row |',
  '`code` ``` *em* _em_ ~~del~~ $math$',
  ':rocket: :heavy_check_mark: :100:'
].join(' ')

function result(i: number, status: Status, extra: Partial<ServerResult> = {}): ServerResult {
  const server = { name: `gw-${i}`, tenant: `tenant-${i}`, region: 'eu-west', host: `10.0.0.${i}` } as Server
  return {
    server,
    status,
    durationMs: 5_000,
    previousImage: 'ghcr.io/acme/openclaw:1.2.2',
    deployedImage: 'ghcr.io/acme/openclaw:1.2.3',
    previousImageId: 'sha256:aaaaaaaaaaaaaaaa',
    deployedImageId: 'sha256:bbbbbbbbbbbbbbbb',
    health: 'HTTP 200; openclaw-gateway running, openclaw-cli exited 0',
    log: [],
    ...extra
  }
}

const render = (md: string) => micromark(md, { allowDangerousHtml: true, extensions: [gfm()], htmlExtensions: [gfmHtml()] })

function decode(html: string): string {
  return html.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot);/gi, (_, e: string) =>
    e[0] === '#'
      ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)))
      : ({ lt: '<', gt: '>', amp: '&', quot: '"' } as Record<string, string>)[e.toLowerCase()]!
  )
}

/** The text of some HTML, with the invisible word joiners that break shortcodes and mentions. */
const textOf = (html: string) => decode(html.replace(/<[^>]*>/g, ''))
/** The text a reader sees (the word joiners dropped). */
const visible = (html: string) => textOf(html).replaceAll(WJ, '')
const tagsOf = (html: string) => new Set([...html.matchAll(/<\/?([a-z][a-z0-9]*)/gi)].map(m => m[1]!.toLowerCase()))
const linksOf = (html: string) => [...html.matchAll(/<a\s[^>]*href="([^"]*)"/gi)].map(m => decode(m[1]!))
const rowsOf = (html: string) => [...html.matchAll(/<tr>([^]*?)<\/tr>/g)].map(r => [...r[1]!.matchAll(/<t[hd][^>]*>([^]*?)<\/t[hd]>/g)].map(c => visible(c[1]!)))
const headingOf = (html: string) => visible(/<h2>([^]*?)<\/h2>/.exec(html)![1]!)
const detailsOf = (html: string) => [...html.matchAll(/<details>([^]*?)<\/details>/g)].map(d => d[1]!)

/** Tags our summary is made of: Markdown's own, and the <details>/<summary>/<pre> we write. */
const OUR_TAGS = new Set(['h2', 'p', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'code', 'strong', 'em', 'a', 'details', 'summary', 'pre'])

/** What a reader sees of a one-line server field: exactly its text, with controls as placeholders. */
const seen = (text: string) => singleLine(text)

function expectNothingInjected(html: string, links: string[]): void {
  expect([...tagsOf(html)].filter(t => !OUR_TAGS.has(t))).toEqual([])
  expect(linksOf(html)).toEqual(links)
  // Emoji shortcodes and mentions are replaced by GitHub after rendering, except in code and <pre>.
  const prose = textOf(html.replace(/<code>[^]*?<\/code>|<pre>[^]*?<\/pre>/g, ' '))
  expect(prose).not.toMatch(/:[\w+-]+:/)
  expect(prose).not.toMatch(/(^|[^\w])@[A-Za-z0-9]/)
  // eslint-disable-next-line no-control-regex
  expect(visible(html)).not.toMatch(/[\u001b\r]/)
}

describe('the rendered job summary', () => {
  it('of a deploy: heading, rows and details read as meant, and hostile server text is only text', () => {
    const settings = settingsFor({ image: 'ghcr.io/acme/openclaw:1.2.3' })
    const md = renderSummary(
      [
        result(1, 'deployed'),
        result(2, 'rolled-back', {
          health: HOSTILE,
          error: HOSTILE,
          failedStep: 'health',
          failedOutput: HOSTILE,
          deployedImage: 'ghcr.io/acme/openclaw:1.2.2',
          deployedImageId: 'sha256:aaaaaaaaaaaaaaaa'
        }),
        result(3, 'failed', { previousImage: HOSTILE, deployedImage: undefined, error: HOSTILE, log: [HOSTILE] })
      ],
      settings,
      env,
      83_400
    )
    const html = render(md)
    expectNothingInjected(html, [])
    expect(headingOf(html)).toBe('OpenClaw deploy of ghcr.io/acme/openclaw:1.2.3 at commit 0123456789ab · trigger: push · total 1m23s')
    expect(rowsOf(html)).toEqual([
      ['Tenant', 'Server', 'Region', 'Status', 'Image', 'Health', 'Duration'],
      [
        'tenant-1',
        'gw-1',
        'eu-west',
        '✅ deployed',
        'ghcr.io/acme/openclaw:1.2.2 aaaaaaaaaaaa → ghcr.io/acme/openclaw:1.2.3 bbbbbbbbbbbb',
        'HTTP 200; openclaw-gateway running, openclaw-cli exited 0',
        '5.0s'
      ],
      ['tenant-2', 'gw-2', 'eu-west', '↩️ rolled-back', 'ghcr.io/acme/openclaw:1.2.3 failed at health; now runs ghcr.io/acme/openclaw:1.2.2 aaaaaaaaaaaa', seen(HOSTILE), '5.0s'],
      ['tenant-3', 'gw-3', 'eu-west', '❌ failed', `${seen(HOSTILE)} aaaaaaaaaaaa → —`, 'HTTP 200; openclaw-gateway running, openclaw-cli exited 0', '5.0s']
    ])
    const details = detailsOf(html)
    expect(details).toHaveLength(2)
    expect(visible(/<summary>([^]*?)<\/summary>/.exec(details[0]!)![1]!)).toBe('↩️ gw-2 (tenant-2): rolled-back at health')
    // One paragraph, starting with our words: the server cannot start a list, a quote or a new block.
    expect([...details[0]!.matchAll(/<p>([^]*?)<\/p>/g)].map(p => visible(p[1]!))).toEqual([`What happened: ${seen(HOSTILE)}`])
    expect(visible(/<pre>([^]*?)<\/pre>/.exec(details[0]!)![1]!)).toBe(multiLine(HOSTILE))
    expect(visible(/<pre>([^]*?)<\/pre>/.exec(details[1]!)![1]!)).toBe(seen(HOSTILE))
  })

  it('of a rollback: a rolled-back row says the recorded image failed and what runs now', () => {
    const md = renderSummary(
      [result(1, 'rolled-back', { error: HOSTILE, failedStep: 'up', deployedImage: 'ghcr.io/acme/openclaw:1.2.3', deployedImageId: 'sha256:bbbbbbbbbbbbbbbb' })],
      settingsFor({ mode: 'rollback' }),
      { ...env, GITHUB_EVENT_NAME: 'workflow_dispatch' },
      9_000
    )
    const html = render(md)
    expectNothingInjected(html, [])
    expect(headingOf(html)).toBe('OpenClaw rollback at commit 0123456789ab · trigger: workflow_dispatch · total 9.0s')
    expect(rowsOf(html)[1]).toEqual([
      'tenant-1',
      'gw-1',
      'eu-west',
      '↩️ rolled-back',
      'the recorded rollback image failed at up; now runs ghcr.io/acme/openclaw:1.2.3 bbbbbbbbbbbb',
      'HTTP 200; openclaw-gateway running, openclaw-cli exited 0',
      '5.0s'
    ])
  })

  it('of a status: last deploy and lock holder in their own columns, linking only real runs of this server', () => {
    const good = '2025-05-01T10:03:12.345Z\tdeployed\tghcr.io/acme/openclaw:1.2.2 -> ghcr.io/acme/openclaw:1.2.3\thttps://github.com/acme/infra/actions/runs/123 by octocat commit abc123def456'
    const forged = `2025-05-01T10:03:12Z\tdeployed\t${HOSTILE} -> x\thttps://evil.example/acme/infra/actions/runs/9 by ${'[a](https://evil.example/e)'} commit abc123def456`
    const holder = 'https://github.com/acme/infra/actions/runs/124 by hubot commit 0123456789ab since 2025-05-01T10:05:00.000Z token=00ff'
    // a run URL of the right shape on the right server, but of another repository
    const elsewhere = '2025-05-01T10:03:12Z\tdeployed\ta -> b\thttps://github.com/evil-org/phish/actions/runs/123 by octocat commit abc123def456'
    const elsewhereHolder = 'https://github.com/evil-org/phish/actions/runs/124 by hubot since 2025-05-01T10:05:00.000Z token=00ff'
    const md = renderSummary(
      [
        result(1, 'healthy', { lastDeploy: good, lockHolder: holder }),
        result(2, 'healthy', { lastDeploy: forged, lockHolder: `${HOSTILE} since 2025-05-01T10:05:00.000Z token=ab` }),
        result(3, 'unhealthy', { lastDeploy: HOSTILE, health: HOSTILE, error: HOSTILE }),
        result(4, 'healthy', { lastDeploy: elsewhere, lockHolder: elsewhereHolder })
      ],
      settingsFor({ mode: 'status' }),
      env,
      4_000
    )
    const html = render(md)
    expectNothingInjected(html, ['https://github.com/acme/infra/actions/runs/123', 'https://github.com/acme/infra/actions/runs/124'])
    expect(headingOf(html)).toBe('OpenClaw status at commit 0123456789ab · trigger: push · total 4.0s')
    const rows = rowsOf(html)
    expect(rows[0]).toEqual(['Tenant', 'Server', 'Region', 'Status', 'Image', 'Health', 'Last deploy', 'Lock', 'Duration'])
    expect(rows[1]!.slice(6, 8)).toEqual([
      '2025-05-01 10:03 UTC: deployed ghcr.io/acme/openclaw:1.2.2 → ghcr.io/acme/openclaw:1.2.3 by octocat (commit abc123def456, run 123)',
      'held by hubot since 2025-05-01 10:05 UTC (commit 0123456789ab, run 124)'
    ])
    expect(rows[2]!.slice(6, 8)).toEqual([
      `2025-05-01 10:03 UTC: deployed ${seen(HOSTILE)} → x by [a](https://evil.example/e) (commit abc123def456, https://evil.example/acme/infra/actions/runs/9)`,
      `held by ${seen(HOSTILE)} since 2025-05-01 10:05 UTC`
    ])
    expect(rows[3]!.slice(5, 8)).toEqual([seen(HOSTILE), seen(HOSTILE), ''])
    // shown as the text it is, never as a link (expectNothingInjected saw only this repository's two)
    expect(rows[4]!.slice(6, 8)).toEqual([
      '2025-05-01 10:03 UTC: deployed a → b by octocat (commit abc123def456, https://github.com/evil-org/phish/actions/runs/123)',
      'held by hubot since 2025-05-01 10:05 UTC (https://github.com/evil-org/phish/actions/runs/124)'
    ])
    expect(html).not.toMatch(/href="[^"]*evil-org/)
    expect(rows).toHaveLength(5)
  })
})

// `npm run demo` shows each summary in the terminal through scripts/dev/demo-view.mjs, a small
// Markdown-to-text view of its own (the demo runs before `npm ci`, so no renderer from npm): each
// table row it prints must read as the rendered row reads, with no Markdown escapes, entities or
// colour codes left when its output is a file.
describe("the demo's terminal view of a summary", () => {
  const view = (md: string, env: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'demo-view-'))
    try {
      writeFileSync(join(dir, 'summary.md'), md)
      return execFileSync(process.execPath, ['scripts/dev/demo-view.mjs', 'summary', join(dir, 'summary.md')], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ...env }
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const words = (text: string) => text.replace(/\s+/g, ' ').trim()

  it.each([
    ['deploy', { image: 'ghcr.io/acme/openclaw:1.2.3' }, 'rolled-back' as Status],
    ['status', { mode: 'status' }, 'unhealthy' as Status]
  ])('of a %s reads as the rendered page does', (_, inputs, status) => {
    const md = renderSummary(
      [
        result(1, status === 'unhealthy' ? 'healthy' : 'deployed', { lastDeploy: HOSTILE }),
        result(2, status, { health: HOSTILE, error: HOSTILE, failedStep: 'health', lockHolder: `${HOSTILE} since 2025-05-01T10:05:00.000Z token=ab` }),
        result(3, 'failed', { error: 'cost $5 of _x_ at 50% \\ done', deployedImage: undefined })
      ],
      settingsFor(inputs),
      env,
      61_000
    )
    const text = view(md)
    const lines = text.split('\n').map(words)
    for (const row of rowsOf(render(md))) expect(lines).toContain(words(row.join(' ')))
    expect(lines).toContain(headingOf(render(md)))
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/\u001b|&(lt|gt|amp|quot|#\d+);|\\[\\`*_[\]~|$!#:.]/)
  })

  it('aligns columns by what a terminal shows (an emoji takes two columns) and colours only when told', () => {
    const md = renderSummary([result(1, 'deployed'), result(2, 'rolled-back', { failedStep: 'health' })], settingsFor({ image: 'x/y:2' }), env, 1_000)
    const rows = view(md)
      .split('\n')
      .filter(l => /^tenant-/.test(l))
    // where the Image column starts, in terminal columns
    const imageColumn = (row: string) => {
      const before = /^.*?(deployed|rolled-back) +/u.exec(row)![0]
      return [...before.replace(/\p{Extended_Pictographic}\uFE0F?/gu, '##')].length
    }
    expect(imageColumn(rows[0]!)).toBe(imageColumn(rows[1]!))
    expect(view(md)).not.toMatch(/\u001b\[/) // eslint-disable-line no-control-regex
    expect(view(md, { DEMO_COLOR: '1' })).toMatch(/\u001b\[1m/) // eslint-disable-line no-control-regex
    expect(view(md, { DEMO_COLOR: '1', NO_COLOR: '1' })).not.toMatch(/\u001b\[/) // eslint-disable-line no-control-regex
  })
})
