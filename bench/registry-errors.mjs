// How long rejecting a big bad registry takes: loadRegistry on generated files (many problems, deep
// nesting), compiled from src/ to a scratch folder. Prints one line per file: size, problems, median
// and slowest of a few runs. No rig, no root: `node bench/registry-errors.mjs [runs]`.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const RUNS = Number(process.argv[2] ?? 5)
const work = mkdtempSync(join(os.tmpdir(), 'registry-errors-'))
try {
  const out = join(work, 'build')
  const tsc = spawnSync(
    join(ROOT, 'node_modules', '.bin', 'tsc'),
    [
      '--ignoreConfig',
      '--outDir',
      out,
      '--rootDir',
      ROOT,
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--skipLibCheck',
      '--types',
      'node',
      '--resolveJsonModule',
      join(ROOT, 'src', 'registry', 'load.ts')
    ],
    { encoding: 'utf8' }
  )
  if (tsc.status !== 0) throw new Error(`compiling src/registry/load.ts failed: ${tsc.stdout}${tsc.stderr}`)
  // tsc leaves the generated validator (plain JS) behind, and the build needs the packages.
  copyFileSync(join(ROOT, 'src', 'registry', 'registry-validator.generated.js'), join(out, 'src', 'registry', 'registry-validator.generated.js'))
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'))
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n')
  const { loadRegistry } = await import(join(out, 'src', 'registry', 'load.js'))

  const server = (i, extra = '') => `    {"name": "s-${i}", "host": "s-${i}.example.com", "tenant": "acme"${extra}}`
  const registry = lines => `{\n  "servers": [\n${lines.join(',\n')}\n  ]\n}\n`
  const times = (n, f) => Array.from({ length: n }, (_, i) => f(i))
  const files = {
    '20,000 bad ports': registry(times(20000, i => server(i, ', "port": 0'))),
    '40,000 repeated keys': registry(times(20000, i => server(i, ', "port": 22, "port": 23, "user": "a", "user": "b"'))),
    'labels nested 5,000 deep': registry([server(0, `, "labels": {"team": ${'{"x": '.repeat(5000)}"v"${'}'.repeat(5000)}}`)]),
    // What the 5 MB size limit still lets in.
    '600,000 problems (5 MB)': registry(times(150000, i => `{"name":"A${i}","host":"b c"}`)),
    'a list nested 2,000,000 deep': `{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "services": [${'['.repeat(2e6)}${']'.repeat(2e6)}]}]}`,
    'an object 200,000 deep, a key repeated at every level': `{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "labels": {"x": ${'{"k": 1, "k": 2, "x": '.repeat(2e5)}1${'}'.repeat(2e5)}}}]}`,
    '500,000 host keys': `{"servers": [{"name": "a", "host": "a.example.com", "tenant": "acme", "hostKey": [${times(5e5, i => i).join(',')}]}]}`
  }
  for (const [title, text] of Object.entries(files)) {
    const file = join(work, 'registry.json')
    writeFileSync(file, text)
    const ms = []
    let problems = 0
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now()
      try {
        loadRegistry(file)
        throw new Error(`${title}: accepted`)
      } catch (error) {
        if (!error.details) throw error
        problems = error.details.length
      }
      ms.push(performance.now() - started)
    }
    ms.sort((a, b) => a - b)
    const median = ms[Math.floor(ms.length / 2)]
    console.log(
      `${title.padEnd(56)} ${(text.length / 1e6).toFixed(2).padStart(5)} MB ${String(problems).padStart(7)} problems  median ${median.toFixed(0).padStart(5)} ms  slowest ${ms.at(-1).toFixed(0).padStart(5)} ms`
    )
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
