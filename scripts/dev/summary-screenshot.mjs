// A picture of job summaries as GitHub shows them, for the README: each summary rendered as GitHub
// renders Markdown (GFM, HTML allowed; micromark, as the summary tests use), in a page styled like
// the run page's summary card, screenshotted by headless Chromium from Debian (apt-get install chromium).
//
//   node scripts/dev/summary-screenshot.mjs OUT.png SUMMARY.md [SUMMARY.md …]
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { micromark } from 'micromark'
import { gfm, gfmHtml } from 'micromark-extension-gfm'

const [out, ...summaries] = process.argv.slice(2)
if (!out || summaries.length === 0) {
  console.error('usage: summary-screenshot.mjs OUT.png SUMMARY.md [SUMMARY.md …]')
  process.exit(2)
}
const cards = summaries
  .map(file => micromark(readFileSync(file, 'utf8'), { allowDangerousHtml: true, extensions: [gfm()], htmlExtensions: [gfmHtml()] }))
  .map(html => `<section class="card">${html}</section>`)
  .join('\n')
const page = `<!doctype html><meta charset="utf-8"><style>
  body { margin: 0; padding: 16px; background: #f6f8fa; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; color: #1f2328; }
  .card { background: #fff; border: 1px solid #d1d9e0; border-radius: 6px; padding: 16px 24px; margin-bottom: 16px; }
  h2 { font-size: 1.5em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; margin-top: 0; }
  table { border-collapse: collapse; display: block; overflow: auto; }
  th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
  th { font-weight: 600; }
  tr:nth-child(2n) { background: #f6f8fa; }
  code { font: 85% ui-monospace, SFMono-Regular, Menlo, monospace; background: #eff1f3; padding: .2em .4em; border-radius: 6px; }
  pre { background: #f6f8fa; padding: 12px; border-radius: 6px; font: 85% ui-monospace, monospace; white-space: pre-wrap; }
  a { color: #0969da; }
</style>${cards}`
const dir = mkdtempSync(join(tmpdir(), 'summary-shot-'))
try {
  writeFileSync(join(dir, 'page.html'), page)
  const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium'
  // the flags keep a sandboxed root Chromium from reaching out to the network at start
  const r = spawnSync(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(dir, 'profile')}`,
      '--hide-scrollbars',
      `--window-size=1400,${process.env.HEIGHT ?? 1100}`,
      `--screenshot=${resolve(out)}`,
      `file://${join(dir, 'page.html')}`
    ],
    { encoding: 'utf8', timeout: 60_000 }
  )
  if (r.status !== 0) throw new Error(`chromium failed (${r.status}): ${r.stderr}`)
  console.log(`wrote ${out}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
