import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import type { ServerResult, Status } from '../../src/deploy/result.js'
import type { Server } from '../../src/registry/types.js'
import { runnerView } from '../fixtures/runner-view.js'
import { setSecret } from '../__fixtures__/core.js'

// What the report prints is the point here, so it prints through the real @actions/core (captured
// below); only masking is faked, as reading settings masks the key before any test captures stdout.
const realCore = await import('@actions/core')
jest.unstable_mockModule('@actions/core', () => ({ ...realCore, setSecret }))
const { annotate, lastDeployCell, lockCell, logServer, renderSummary, RESULTS_BUDGET_BYTES, resultsJson, runLink, setOutputs } = await import('../../src/report/report.js')
const { readSettings } = await import('../../src/settings.js')

const settings = readSettings(n => ({ 'ssh-private-key': 'k', image: 'ghcr.io/acme/openclaw:1.2.3' })[n] ?? '')
const statusSettings = readSettings(n => ({ 'ssh-private-key': 'k', mode: 'status' })[n] ?? '')
const env = { GITHUB_SHA: '0123456789abcdef0123456789' }
const WJ = '\u2060'

function result(i: number, status: Status, extra: Partial<ServerResult> = {}): ServerResult {
  const server = { name: `gw-${i}`, tenant: `tenant-${i % 7}`, region: 'eu-west', host: `10.0.${i >> 8}.${i & 255}` } as Server
  return {
    server,
    status,
    durationMs: 12_345,
    previousImage: 'ghcr.io/acme/openclaw:1.2.2',
    deployedImage: 'ghcr.io/acme/openclaw:1.2.3',
    previousImageId: 'sha256:aaaaaaaaaaaaaaaa',
    deployedImageId: 'sha256:bbbbbbbbbbbbbbbb',
    health: 'HTTP 200; openclaw-gateway running, openclaw-cli exited 0',
    log: [],
    ...extra
  }
}

/** Server text a compromised tenant could send: each tries to forge a log command, markup or a new row. */
const HOSTILE = [
  'key\r::error title=globex-1 (globex)::forged annotation',
  'line\n::stop-commands::x',
  '::add-mask::nothing %0A::error::encoded %0D%0A::warning::also',
  '\u001b[2K\u001b[1A\u001b[32m✅ deployed\u001b[0m \u001b]8;;https://evil.example\u0007link\u001b]8;;\u0007',
  '##[error]old command form',
  '[click me](https://evil.example) ![pixel](https://evil.example/p.png) <https://evil.example>',
  '<img src=x onerror=alert(1)> <details open><summary>s</summary> </details></pre>',
  '| forged | row |\n| --- | --- |',
  '`code` ``` :rocket: :heavy_check_mark: @octocat www.evil.example me@evil.example $x$',
  '\u202egnirts desrever'
].join(' ')

// Characters a server must not get into what the runner or a reader sees (matching them is the point).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u001b\u009b\r\u202e]/
// eslint-disable-next-line no-control-regex
const LINE_BREAK_OR_ESC = /[\r\n\u001b]/

/** An annotation's message as the runner shows it (it undoes @actions/core's escaping). */
const unescape = (data: string) => data.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%')

let printed: string[] = []
beforeEach(() => {
  printed = []
  jest.spyOn(process.stdout, 'write').mockImplementation(chunk => (printed.push(String(chunk)), true))
})
afterEach(() => {
  jest.restoreAllMocks()
})
const stdout = () => printed.join('')

describe('the log', () => {
  it('prints a server group whose lines quote the server inside a stop-commands block, so none of them is a command', () => {
    logServer(result(1, 'failed', { log: ['— connecting', `health: failed (${HOSTILE})`], error: HOSTILE, failedStep: 'up', failedOutput: `${HOSTILE}\n##[group]fake\n::endgroup::` }))
    const { commands, text } = runnerView(stdout())
    expect(commands).toEqual([expect.stringMatching(/^::group::❌ gw-1 \(tenant-1\): failed in 12\.3s$/), '::endgroup::'])
    expect(text).toContain('— connecting')
    expect(text.some(l => l.startsWith('error: key␍::error title=globex-1 (globex)::forged annotation line␊::stop-commands::x'))).toBe(true)
    expect(text).toContain('last output of up:')
    expect(text).toContain('::endgroup::')
    // No control character reaches the log: no ANSI repaint, no line drawn over another.
    expect(stdout()).not.toMatch(CONTROL)
    expect(text.join('\n')).toContain('%0A::error::encoded')
  })

  it('leaves the action its own later commands: a forged ::stop-commands:: cannot swallow them', () => {
    logServer(result(1, 'failed', { error: '::stop-commands::abc', log: ['x\r::stop-commands::def'] }))
    annotate([result(2, 'failed', { error: 'broken' })])
    expect(runnerView(stdout()).commands).toContainEqual('::error title=gw-2 (tenant-2)%3A failed::broken')
  })
})

describe('annotations', () => {
  it('show server text on one line with control characters replaced, and bounded', () => {
    annotate([result(1, 'failed', { error: HOSTILE, warnings: [`took over the lock of ${HOSTILE}`] }), result(2, 'rolled-back', { error: 'x'.repeat(10_000) })])
    const { commands } = runnerView(stdout())
    expect(commands).toHaveLength(3)
    const messages = commands.map(c => unescape(c.slice(c.indexOf('::', 2) + 2)))
    expect(commands[0]).toMatch(/^::warning title=gw-1 \(tenant-1\)::took over the lock of key␍::error title=/)
    expect(commands[1]).toMatch(/^::error title=gw-1 \(tenant-1\)%3A failed::key␍::error title=globex-1 \(globex\)::forged annotation line␊/)
    for (const m of messages) expect(m).not.toMatch(LINE_BREAK_OR_ESC)
    expect(messages[1]).toContain('%0A::error::encoded')
    expect(messages[2]!.length).toBeLessThan(2_100)
    expect(messages[2]).toMatch(/… \[8000 more characters cut\]$/)
  })

  it('group servers beyond the tenth into one bounded annotation, warnings too', () => {
    const many = Array.from({ length: 40 }, (_, i) => result(i, 'failed', { error: `e${i} ${'y'.repeat(1000)}`, warnings: [`w${i}`] }))
    annotate(many)
    const { commands } = runnerView(stdout())
    expect(commands.filter(c => c.startsWith('::warning'))).toHaveLength(10)
    expect(commands.filter(c => c.startsWith('::error'))).toHaveLength(10)
    const last = unescape(commands.at(-1)!)
    expect(last).toMatch(/^::error title=31 more servers did not deploy::gw-9 \(tenant-2\): failed: e9 y+… \[\d+ more characters cut\]\n/)
    expect(last.length).toBeLessThan(4_500)
    expect(last).toMatch(/… and \d+ more \(see the summary and the step log\)$/)
  })
})

describe('the results output', () => {
  it('is the JSON of every server, with server text on one line', () => {
    const { json, note } = resultsJson([result(1, 'failed', { error: 'a\r\nb' })])
    expect(note).toBeUndefined()
    expect(JSON.parse(json)).toEqual([
      {
        name: 'gw-1',
        tenant: 'tenant-1',
        region: 'eu-west',
        host: '10.0.0.1',
        jump: null,
        status: 'failed',
        previousImage: 'ghcr.io/acme/openclaw:1.2.2',
        deployedImage: 'ghcr.io/acme/openclaw:1.2.3',
        changedVariables: [],
        durationMs: 12_345,
        error: 'a␍␊b'
      }
    ])
  })

  it('names the jump host a server was reached through, in the results and its summary row', () => {
    const behind = result(2, 'deployed')
    behind.server = { ...behind.server, jump: { host: 'bastion.example', port: 2222, user: 'ops', hostKeys: [] } }
    expect((JSON.parse(resultsJson([result(1, 'deployed'), behind]).json) as Array<{ jump: string | null }>).map(r => r.jump)).toEqual([null, 'bastion.example:2222'])
    const rows = renderSummary([result(1, 'deployed'), behind], settings, env)
      .split('\n')
      .filter(l => l.startsWith('| tenant-'))
    expect(rows[0]).toContain('| gw-1 |')
    expect(rows[1]).toMatch(/\| gw-2 via bastion\S*example:2222 \|/)
  })

  it('names the .env variables each server changed, and only in runs that can change them does the summary show them', () => {
    const results = [result(1, 'deployed', { changedVariables: ['OPENCLAW_GATEWAY_TOKEN', 'A'] }), result(2, 'unchanged')]
    expect((JSON.parse(resultsJson(results).json) as Array<{ changedVariables: string[] }>).map(r => r.changedVariables)).toEqual([['OPENCLAW_GATEWAY_TOKEN', 'A'], []])
    const rotate = readSettings(n => ({ 'ssh-private-key': 'k', mode: 'rotate-token' })[n] ?? '')
    const table = renderSummary(results, rotate, env)
      .split('\n')
      .filter(l => l.startsWith('|'))
    expect(table[0]).toBe('| Tenant | Server | Region | Status | Image | Changed in .env | Health | Duration |')
    expect(table[2]).toContain('| `OPENCLAW_GATEWAY_TOKEN`, `A` |')
    expect(table[3]).toContain('| — |')
    expect(renderSummary(results, settings, env)).not.toContain('Changed in .env')
  })

  it('stays under 1 MiB for 2,000 servers with long errors by cutting the errors first, and says so', () => {
    const results = Array.from({ length: 2000 }, (_, i) => result(i, 'failed', { error: `pull failed: ${'z'.repeat(5000)}` }))
    const { json, note } = resultsJson(results)
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(RESULTS_BUDGET_BYTES)
    const parsed = JSON.parse(json) as Array<{ error: string }>
    expect(parsed).toHaveLength(2000)
    expect(parsed[0]!.error).toMatch(/^pull failed: z+… \[cut: the results output must stay under 1 MiB; the step log has the whole error\]$/)
    expect(note).toMatch(/the entries of 2000 servers are cut \(at most: error texts to (500|100) characters/)

    setOutputs(results)
    expect(stdout()).toContain('::warning::The results output stays under GitHub')
  })

  it('keeps every server when many servers send oversized text in every field, cutting only the entries too big', () => {
    const huge = `${HOSTILE} ${'&"<\\\u0001'.repeat(20_000)}`
    const hostile = Array.from({ length: 300 }, (_, i) =>
      result(i, 'failed', {
        error: huge,
        previousImage: huge,
        deployedImage: huge,
        health: huge,
        lastDeploy: huge,
        lockHolder: huge,
        changedVariables: Array.from({ length: 500 }, (_, j) => `VARIABLE_NUMBER_${j}`)
      })
    )
    const { json, note } = resultsJson([result(1000, 'deployed'), ...hostile, result(1001, 'deployed')])
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(RESULTS_BUDGET_BYTES)
    const parsed = JSON.parse(json) as Array<{ name: string; previousImage: string }>
    expect(parsed.map(e => e.name)).toEqual(['gw-1000', ...hostile.map(r => r.server.name), 'gw-1001'])
    // the servers that sent nothing big keep their entry whole
    expect(parsed[0]).toEqual(JSON.parse(resultsJson([result(1000, 'deployed')]).json)[0])
    expect(parsed.at(-1)!.previousImage).toBe('ghcr.io/acme/openclaw:1.2.2')
    expect(note).toMatch(/^The results output stays under GitHub's 1 MiB limit: the entries of 300 servers are cut/)
    expect(note).not.toMatch(/lists only/)
  })

  it('keeps 3,690 servers with short errors, their entries cut to the shortest form: no entry grows by being cut (3,008 were kept when it did)', () => {
    const results = Array.from({ length: 3690 }, (_, i) => result(i, 'failed', { error: `e${'x'.repeat(18)}` }))
    const { json } = resultsJson(results)
    const parsed = JSON.parse(json) as Array<{ error: string }>
    expect(parsed).toHaveLength(3690)
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(RESULTS_BUDGET_BYTES)
  })

  it('lists only the servers that fit when even short entries are too many, and says so', () => {
    const results = Array.from({ length: 50 }, (_, i) => result(i, 'failed', { error: 'e' }))
    const { json, note } = resultsJson(results, 5_000)
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(5_000)
    expect((JSON.parse(json) as unknown[]).length).toBeGreaterThan(0)
    expect(note).toMatch(/lists only the first \d+ of 50 servers/)
  })
})

describe('job summary', () => {
  it('has a heading with image, commit, trigger and total time, counts, and a row per server', () => {
    const md = renderSummary(
      [
        result(1, 'deployed'),
        result(2, 'rolled-back', { error: 'not healthy', failedStep: 'health', failedOutput: 'http=500', deployedImage: 'ghcr.io/acme/openclaw:1.2.2', deployedImageId: 'sha256:aaaaaaaaaaaaaaaa' })
      ],
      settings,
      { ...env, GITHUB_EVENT_NAME: 'workflow_dispatch' },
      83_400
    )
    expect(md).toContain('## OpenClaw deploy of `ghcr.io/acme/openclaw:1.2.3` at commit `0123456789ab` · trigger: workflow\\_dispatch · total 1m23s\n')
    expect(md).toContain('2 servers: ✅ 1 deployed · ↩️ 1 rolled-back')
    expect(md).toContain(
      '| tenant-1 | gw-1 | eu-west | ✅ deployed | ghcr.io/acme/openclaw:1.2.2 `aaaaaaaaaaaa` → ghcr.io/acme/openclaw:1.2.3 `bbbbbbbbbbbb` | HTTP 200; openclaw-gateway running, openclaw-cli exited 0 | 12.3s |'
    )
    // A rolled-back row says which image failed where, and what runs now.
    expect(md).toContain('| ↩️ rolled-back | ghcr.io/acme/openclaw:1.2.3 failed at health; now runs ghcr.io/acme/openclaw:1.2.2 `aaaaaaaaaaaa` |')
    expect(md).toContain('<details><summary>↩️ gw-2 (tenant-2): rolled-back at health</summary>')
    expect(md).toContain('**What happened:** not healthy')
    expect(md).toContain('<pre>http=500</pre>')
  })

  it('escapes what it shows, so an error message cannot break the table or inject HTML', () => {
    const md = renderSummary([result(1, 'failed', { error: '<img src=x> | evil\nline', failedOutput: '```\n</details>' })], settings, env)
    expect(md).toContain('&lt;img src=x&gt; \\| evil␊line')
    expect(md).not.toContain('<img')
    expect(md.split('</details>')).toHaveLength(2)
  })

  it('keeps every hostile server string inside its cell, its paragraph or its <pre>', () => {
    const md = renderSummary([result(1, 'failed', { error: HOSTILE, health: HOSTILE, previousImage: HOSTILE, failedOutput: HOSTILE, failedStep: 'up' })], settings, env)
    const rows = md.split('\n').filter(l => l.startsWith('| tenant-'))
    expect(rows).toHaveLength(1)
    // 7 cells: 8 pipes that are not escaped.
    expect(rows[0]!.match(/(?<!\\)\|/g)).toHaveLength(8)
    expect(md).not.toMatch(/<(?!\/?(details|summary|pre)>)[a-z]/i)
    expect(md).not.toMatch(CONTROL)
    // Outside <pre> (raw HTML, where Markdown is not parsed) every `[` is escaped; the rendering test checks what a reader sees.
    expect(md.replace(/<pre>[^]*?<\/pre>/g, '')).not.toMatch(/(?<!\\)\[click me\]/)
    expect(md).toContain(`:${WJ}rocket:`)
  })

  it('in mode: status shows the last deploy in a column of its own, with a live link only to a run of this server', () => {
    const last = '2025-05-01T10:03:12.345Z\tdeployed\tghcr.io/acme/openclaw:1.2.2 -> ghcr.io/acme/openclaw:1.2.3\thttps://github.com/acme/infra/actions/runs/123 by octocat commit abc123def456'
    const holder = 'https://github.com/acme/infra/actions/runs/124 by hubot commit 0123456789ab since 2025-05-01T10:05:00.000Z token=00ff'
    const md = renderSummary([result(1, 'healthy', { lastDeploy: last, lockHolder: holder }), result(2, 'unhealthy', { lastDeploy: `${HOSTILE}\t${HOSTILE}` })], statusSettings, {
      ...env,
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_REPOSITORY: 'acme/infra'
    })
    expect(md).toContain('## OpenClaw status at commit `0123456789ab`')
    expect(md).toContain('| Tenant | Server | Region | Status | Image | Health | Last deploy | Lock | Duration |')
    expect(md).toContain(
      '| 2025-05-01 10:03 UTC: deployed ghcr.io/acme/openclaw:1.2.2 → ghcr.io/acme/openclaw:1.2.3 by octocat (commit `abc123def456`, [run 123](https://github.com/acme/infra/actions/runs/123)) | held by hubot since 2025-05-01 10:05 UTC (commit `0123456789ab`, [run 124](https://github.com/acme/infra/actions/runs/124)) |'
    )
    expect(md).not.toContain('token=')
    expect(md.match(/(?<!\\)\]\(/g)).toHaveLength(2)
  })

  it('shortens a row bigger than its share instead of leaving out the rows after it', () => {
    // (far past every bound; one string shared by every server keeps the test's memory small)
    const huge = `${HOSTILE} ${'&"<\\\u0001|'.repeat(20_000)}`
    const [lastDeploy, lockHolder] = [`${huge}\t${huge}\t${huge}\t${huge}`, `${huge} since ${huge} token=00ff`]
    const hostile = (i: number) => result(i, 'unhealthy', { error: huge, previousImage: huge, deployedImage: huge, health: huge, lastDeploy, lockHolder })
    for (const results of [
      [hostile(0), ...Array.from({ length: 999 }, (_, i) => result(i + 1, 'healthy', { lastDeploy: '2025-05-01T10:03:12Z\tdeployed\ta -> b\tlocal run by me' }))],
      Array.from({ length: 400 }, (_, i) => hostile(i))
    ]) {
      const md = renderSummary(results, statusSettings, env)
      expect(Buffer.byteLength(md)).toBeLessThan(1024 * 1024)
      const rows = md.split('\n').filter(l => l.startsWith('| tenant-'))
      const leftOut = Number(/_(\d+) more rows left out/.exec(md)?.[1] ?? 0)
      expect(rows.length + leftOut).toBe(results.length)
      expect(rows).toHaveLength(results.length)
      // every row keeps its cells: 9 cells, 10 pipes that are not escaped
      expect(rows.map(row => row.match(/(?<!\\)\|/g)?.length).filter(pipes => pipes !== 10)).toEqual([])
      if (results.length === 400) expect(/_400 rows shortened \(… marks what is cut\) to stay under GitHub's 1 MiB summary limit/.test(md)).toBe(true)
    }
    // one hostile server costs the others nothing: their rows are whole
    const rows = renderSummary([hostile(0), result(1, 'healthy')], statusSettings, env).split('\n')
    expect(rows.filter(row => row.startsWith('| tenant-1 '))).toEqual([
      '| tenant-1 | gw-1 | eu-west | 💚 healthy | ghcr.io/acme/openclaw:1.2.2 `aaaaaaaaaaaa` → ghcr.io/acme/openclaw:1.2.3 `bbbbbbbbbbbb` | HTTP 200; openclaw-gateway running, openclaw-cli exited 0 | — |  | 12.3s |'
    ])
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

describe('history lines and lock notes', () => {
  const ghes = { GITHUB_SERVER_URL: 'https://ghe.example.com', GITHUB_REPOSITORY: 'o/r' }

  it('link a run only when it is exactly a run URL of this run’s repository under this run’s server', () => {
    expect(runLink('https://github.com/o/r/actions/runs/42', { GITHUB_REPOSITORY: 'o/r' })).toBe('[run 42](https://github.com/o/r/actions/runs/42)')
    expect(runLink('https://ghe.example.com/o/r.js/actions/runs/42', { ...ghes, GITHUB_REPOSITORY: 'o/r.js' })).toBe('[run 42](https://ghe.example.com/o/r.js/actions/runs/42)')
    expect(runLink('https://ghe.example.com/o/r/actions/runs/42', ghes)).toBe('[run 42](https://ghe.example.com/o/r/actions/runs/42)')
    // outside Actions there is no repository of this run, so nothing is a link
    expect(runLink('https://github.com/o/r/actions/runs/42', {})).toBeUndefined()
    expect(runLink('https://ghe.example.com/o/../actions/runs/42', { ...ghes, GITHUB_REPOSITORY: 'o/..' })).toBeUndefined()
    for (const url of [
      'https://ghe.example.com/evil-org/phish/actions/runs/123',
      'https://ghe.example.com/o/r2/actions/runs/42',
      'https://ghe.example.com/o/r.js/actions/runs/42',
      'https://ghe.example.com/O/r/actions/runs/42',
      'https://ghe.example.com/o/r/actions/runs/42/attempts/1',
      'https://github.com/o/r/actions/runs/42',
      'https://ghe.example.com.evil.example/o/r/actions/runs/42',
      'https://ghe.example.com/o/r/actions/runs/42/../../../x',
      'https://ghe.example.com/o/../actions/runs/42',
      'https://ghe.example.com/o/r/actions/runs/42)',
      'https://ghe.example.com/o/r/actions/runs/42 [x](https://evil.example)',
      'http://ghe.example.com/o/r/actions/runs/42',
      'https://ghe.example.com/o/r/actions/runs/'
    ]) {
      expect(runLink(url, ghes)).toBeUndefined()
    }
  })

  it('show a line that is not one of ours as escaped text', () => {
    expect(lastDeployCell('[x](https://evil.example)', {})).toBe('\\[x\\](https\\://evil.example)')
    expect(lastDeployCell('2025-05-01T10:03:12Z\tdeployed\ta -> b\thttps://evil.example/o/r/actions/runs/1 by <b>x</b>', {})).toBe(
      '2025-05-01 10:03 UTC: deployed a → b by &lt;b&gt;x&lt;/b&gt; (https\\://evil.example/o/r/actions/runs/1)'
    )
    expect(lastDeployCell('yesterday\trolled-back\tb -> a\tlocal run by me@laptop', {})).toBe(`yesterday: rolled-back b → a by me@${WJ}laptop (local run)`)
    expect(lockCell('someone\rnote', {})).toBe('someone␍note')
  })
})
