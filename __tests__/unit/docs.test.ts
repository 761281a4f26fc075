// The docs and examples stay true to the action: every input in action.yml is documented in the
// README and the docs name no input that does not exist; every example registry passes the
// registry's own checks; every workflow and action.yml pass GitHub's workflow parser; the shell
// commands the docs show are the ones the end-to-end tests run; and every error message the
// troubleshooting section is keyed by is one the action or the scripts really print.
import { afterAll, describe, expect, jest, test } from '@jest/globals'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser'
import { convertActionTemplate, parseAction } from '@actions/workflow-parser/actions/index'
import { ErrorPolicy } from '@actions/workflow-parser/model/convert'
import * as core from '../__fixtures__/core.js'
import { codeBlocks, docFiles, testedBlocks } from '../rig/operator-kit.js'

// (reading the examples' tenant-env masks its values: workflow commands on stdout with the real module)
jest.unstable_mockModule('@actions/core', () => core)
const { checkTenantEnv } = await import('../../src/plan.js')
const { loadRegistry } = await import('../../src/registry/load.js')
const { readSettings } = await import('../../src/settings.js')

const root = resolve(dirname(new URL(import.meta.url).pathname), '..', '..')
const rel = (file: string) => relative(root, file)
const read = (file: string) => readFileSync(file, 'utf8')

function filesUnder(dir: string, pattern: RegExp): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter(f => pattern.test(f))
    .sort()
    .map(f => join(dir, f))
}

const readme = join(root, 'README.md')
const actionFile = join(root, 'action.yml')
const exampleWorkflows = filesUnder(join(root, 'docs'), /(^|\/)workflows\/[^/]+\.ya?ml$/)
const workflows = [...filesUnder(join(root, '.github', 'workflows'), /\.ya?ml$/), ...exampleWorkflows]
const markdown = [readme, ...docFiles()]
const trace = new NoOperationTraceWriter()

function actionInputs(): string[] {
  const parsed = parseAction({ name: 'action.yml', content: read(actionFile) }, trace)
  // whether action.yml is valid is a test of its own below; the inputs are read regardless
  const action = convertActionTemplate(parsed.context, parsed.value!, { errorPolicy: ErrorPolicy.TryConversion })
  return (action.inputs ?? []).map(i => i.id)
}
const inputs = new Set(actionInputs())

/** Keys under `with:` of every step that uses this action (a released tag or `./`), by line scan. */
function actionWithKeys(text: string): Array<{ key: string; line: number }> {
  const lines = text.split('\n')
  const found: Array<{ key: string; line: number }> = []
  for (let i = 0; i < lines.length; i++) {
    const uses = /^(\s*)(- )?uses:\s*['"]?([^'"\s#]+)/.exec(lines[i])
    if (!uses || !/(^|\/)openclaw-deploy-action(@|$)|^\.\/?$/.test(uses[3])) continue
    const keyIndent = uses[1].length + (uses[2] ? 2 : 0)
    for (let j = i + 1; j < lines.length; j++) {
      const indent = lines[j].search(/\S/)
      if (indent < 0) continue
      if (indent < keyIndent || (indent === keyIndent - 2 && lines[j].trim().startsWith('- '))) break
      if (indent === keyIndent && /^with:\s*$/.test(lines[j].trim())) {
        let childIndent = -1
        for (let k = j + 1; k < lines.length; k++) {
          const ind = lines[k].search(/\S/)
          if (ind < 0 || lines[k].trim().startsWith('#')) continue
          if (ind <= keyIndent) break
          if (childIndent < 0) childIndent = ind
          const key = /^([A-Za-z0-9_-]+):/.exec(lines[k].trim())
          if (ind === childIndent && key) found.push({ key: key[1], line: k + 1 })
        }
      }
    }
  }
  return found
}

/**
 * Input names a Markdown file refers to outside code blocks: "the `x` input", "input `x`",
 * `x: value`, and the cells of a table's "Input"/"Inputs" column.
 */
function inputMentions(text: string): Array<{ name: string; line: number }> {
  const mentions: Array<{ name: string; line: number }> = []
  const lines = text.split('\n')
  let inCode = false
  let inputColumns: number[] | undefined // of the table being read; undefined outside tables
  lines.forEach((line, i) => {
    if (/^```/.test(line)) inCode = !inCode
    if (inCode) return
    const cells = line.startsWith('|') ? line.split('|').slice(1, -1) : undefined
    if (!cells) inputColumns = undefined
    else if (!inputColumns) inputColumns = cells.flatMap((c, n) => (/\binputs?\b/i.test(c) ? [n] : []))
    else if (!/^\|\s*-/.test(line)) {
      for (const n of inputColumns) for (const m of (cells[n] ?? '').matchAll(/`([a-z][a-z0-9-]*)`/g)) mentions.push({ name: m[1], line: i + 1 })
    }
    for (const m of line.matchAll(/`([a-z][a-z0-9-]*)`\s+inputs?\b|\binputs?\s+`([a-z][a-z0-9-]*)`/g)) mentions.push({ name: m[1] ?? m[2], line: i + 1 })
    for (const m of line.matchAll(/`([a-z][a-z0-9-]*): [^`]+`/g)) mentions.push({ name: m[1], line: i + 1 })
  })
  return mentions
}

describe('inputs', () => {
  test('action.yml declares the inputs the docs rely on', () => {
    for (const name of ['servers-file', 'mode', 'image', 'ssh-private-key', 'known-hosts', 'tenants', 'canary', 'max-failures']) {
      expect(inputs).toContain(name)
    }
  })

  test('the README documents every input of action.yml, and no other, in its Inputs table', () => {
    const section = read(readme)
      .split(/^## /m)
      .find(s => s.startsWith('Inputs'))
    expect(section).toBeDefined()
    const rows = [...section!.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map(m => m[1])
    expect([...rows].sort()).toEqual([...inputs].sort())
  })

  test.each([...markdown, ...workflows].map(f => [rel(f), f]))('%s names only inputs that exist', (_name, file) => {
    const text = read(file)
    const named = [...actionWithKeys(text), ...(file.endsWith('.md') ? inputMentions(text) : []).map(m => ({ key: m.name, line: m.line }))]
    const unknown = named.filter(n => !inputs.has(n.key)).map(n => `${rel(file)}:${n.line}: ${n.key}`)
    expect(unknown).toEqual([])
  })

  test('the example workflows use the action', () => {
    expect(exampleWorkflows.length).toBeGreaterThanOrEqual(4)
    for (const file of exampleWorkflows.filter(f => !/build-image/.test(f))) expect(actionWithKeys(read(file)).length).toBeGreaterThan(0)
  })
})

describe("workflows and action.yml pass GitHub's workflow parser", () => {
  test('action.yml', () => {
    const parsed = parseAction({ name: 'action.yml', content: read(actionFile) }, trace)
    expect(parsed.context.errors.getErrors().map(e => e.message)).toEqual([])
    const action = convertActionTemplate(parsed.context, parsed.value!)
    expect(action.runs).toMatchObject({ using: 'node24', main: 'dist/index.js', post: 'dist/post/index.js', postIf: 'cancelled()' })
  })

  test.each(workflows.map(f => [rel(f), f]))('%s', async (_name, file) => {
    const parsed = parseWorkflow({ name: rel(file), content: read(file) }, trace)
    expect(parsed.context.errors.getErrors().map(e => e.message)).toEqual([])
    const template = await convertWorkflowTemplate(parsed.context, parsed.value!)
    expect(template.errors ?? []).toEqual([])
    expect(template.jobs.length).toBeGreaterThan(0)
  })

  test('the parser is a real check: it rejects a broken workflow', () => {
    const broken = 'on:\n  push:\n    branchs: [PRD]\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: ./\n        with2: {}\n'
    const parsed = parseWorkflow({ name: 'broken.yml', content: broken }, trace)
    expect(
      parsed.context.errors
        .getErrors()
        .map(e => e.message)
        .join('\n')
    ).toMatch(/branchs[\s\S]*with2/)
  })
})

describe('example registries pass the registry checks', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'openclaw-docs-'))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))
  const files = filesUnder(join(root, 'docs'), /\.json$/).filter(f => 'servers' in (JSON.parse(read(f)) as object))
  const json = markdown.flatMap(file =>
    codeBlocks(file)
      .filter(b => b.lang === 'json')
      .map(b => ({ where: `${rel(file)}:${b.line}`, text: b.text, value: JSON.parse(b.text) as Record<string, unknown> }))
  )
  // a JSON block is a registry, one server entry, or an example of the tenant-env input
  const isTenantEnv = (value: object) => !('servers' in value) && !('host' in value)
  const blocks = json.filter(b => !isTenantEnv(b.value))
  const tenantEnvBlocks = json.filter(b => isTenantEnv(b.value))

  test('there are example registries to check', () => {
    expect(files.map(rel)).toContain('docs/examples/production.json')
    expect(blocks.length).toBeGreaterThan(0)
  })

  test.each(files.map(f => [rel(f), f]))('%s', (_name, file) => {
    const registry = loadRegistry(file)
    expect(registry.servers.length).toBeGreaterThan(0)
  })

  test.each(blocks.map(b => [b.where, b.value] as const))('the JSON block at %s', (where, value) => {
    // a whole registry, or one server entry as setup-server.sh prints it
    const registry = 'servers' in value ? value : { servers: [value] }
    const file = join(scratch, `${where.replace(/[^A-Za-z0-9]+/g, '-')}.json`)
    writeFileSync(file, JSON.stringify(registry, null, 2))
    expect(loadRegistry(file).servers.length).toBeGreaterThan(0)
  })

  test.each(tenantEnvBlocks.map(b => [b.where, b.text] as const))('the tenant-env example at %s is valid for docs/examples/production.json', (_where, text) => {
    const settings = readSettings(name => ({ 'ssh-private-key': 'k', 'tenant-env': text })[name] ?? '')
    expect(Object.keys(settings.tenantEnv).length).toBeGreaterThan(0)
    checkTenantEnv(loadRegistry(join(root, 'docs', 'examples', 'production.json')), settings.tenantEnv)
  })
})

describe('the commands in the docs are the tested ones', () => {
  const blocks = testedBlocks()
  const e2e = filesUnder(join(root, '__tests__', 'e2e'), /^operator-kit.*\.test\.ts$/)
    .map(read)
    .join('\n')

  test('each tested block is run by an end-to-end test, and reads the same wherever it is shown', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(6)
    for (const block of blocks) {
      expect([block.id, e2e.includes(`'${block.id}'`)]).toEqual([block.id, true])
      const same = blocks.filter(b => b.id === block.id)
      expect(same.map(b => b.text)).toEqual(same.map(() => block.text))
    }
  })

  test('each README block marked <!-- copy of: FILE --> reads exactly as FILE', () => {
    const lines = read(readme).split('\n')
    const copies = codeBlocks(readme).flatMap(b => {
      const marker = /^<!--\s*copy of:\s*(\S+)\s*-->\s*$/.exec(lines[b.line - 2] ?? '')
      return marker ? [{ file: marker[1], line: b.line, text: b.text }] : []
    })
    expect(copies.map(c => c.file)).toContain('docs/examples/workflows/deploy-tailscale.yml')
    for (const copy of copies) expect([`README.md:${copy.line}`, copy.text]).toEqual([`README.md:${copy.line}`, read(join(root, copy.file))])
  })

  test('every shell block that runs a script of the kit or checks host keys is a tested one', () => {
    const untested = markdown.flatMap(file =>
      codeBlocks(file)
        .filter(b => ['sh', 'bash', 'shell', 'console'].includes(b.lang) && !b.tested)
        .filter(b => /setup-server\.sh|backup-openclaw\.sh|ssh-keyscan|ssh-keygen/.test(b.text))
        .map(b => `${rel(file)}:${b.line}`)
    )
    expect(untested).toEqual([])
  })

  test('every script and file the docs point at exists', () => {
    const missing: string[] = []
    for (const file of markdown) {
      for (const m of read(file).matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(m[1])) continue
        if (!existsSync(resolve(dirname(file), m[1]))) missing.push(`${rel(file)}: ${m[1]}`)
      }
      for (const m of read(file).matchAll(/\bscripts\/deployment\/[A-Za-z0-9_./-]+/g)) {
        if (!existsSync(join(root, m[0]))) missing.push(`${rel(file)}: ${m[0]}`)
      }
    }
    expect(missing).toEqual([])
  })
})

describe('troubleshooting', () => {
  const guide = read(join(root, 'docs', 'deployment', 'AUTO-DEPLOY-SETUP.md'))
  const section = guide.slice(guide.indexOf('## 11. Troubleshooting'))
  const headings = [...section.matchAll(/^### `(.+)`$/gm)].map(m => m[1])
  const sources = [...filesUnder(join(root, 'src'), /\.ts$/), ...filesUnder(join(root, 'scripts', 'deployment'), /\.sh$/)].map(read).join('\n')

  test('is keyed by messages the action and the scripts really print', () => {
    expect(headings.length).toBeGreaterThanOrEqual(20)
    const invented = headings.filter(h =>
      h
        .split('…')
        .map(part => part.trim())
        .filter(Boolean)
        .some(part => !sources.includes(part))
    )
    expect(invented).toEqual([])
  })

  test('covers every reason a step on the server gives for failing', () => {
    const commands = read(join(root, 'src', 'remote', 'commands.ts'))
    const reasons = [...commands.matchAll(/fail "([^"]+)"/g)].map(m => m[1])
    expect(reasons.length).toBeGreaterThan(5)
    // the longest stretch of each message that does not depend on the server or its values
    const uncovered = reasons.filter(reason => {
      const longest = reason
        .split(/\$\([^)]*\)|\$\{[^}]*\}|\$[A-Za-z0-9_]+/)
        .map(s => s.trim())
        .sort((a, b) => b.length - a.length)[0]
      return !headings.some(h => h.includes(longest))
    })
    expect(uncovered).toEqual([])
  })
})
