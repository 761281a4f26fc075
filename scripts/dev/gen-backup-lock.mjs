// Writes the deploy lock's shell functions into scripts/deployment/backup-openclaw.sh, between its
// BEGIN/END generated lines, from src/remote/commands.ts (see src/remote/script-lock.ts), so the
// backup takes the lock with the very scripts the action runs. Run by `npm run package`; a unit test
// (backup-lock.test.ts) fails when the copy is stale.
//
// Node 20 cannot import TypeScript, so src/remote/script-lock.ts and the modules it imports are
// transpiled (no type check: tsc does that) into a temporary folder first.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const entry = join(root, 'src', 'remote', 'script-lock.ts')
const script = join(root, 'scripts', 'deployment', 'backup-openclaw.sh')

const out = mkdtempSync(join(tmpdir(), 'openclaw-gen-backup-lock-'))
try {
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n')
  const done = new Set()
  const transpile = file => {
    if (done.has(file)) return
    done.add(file)
    const source = readFileSync(file, 'utf8')
    for (const { fileName } of ts.preProcessFile(source).importedFiles) {
      if (fileName.startsWith('.')) transpile(resolve(dirname(file), fileName.replace(/\.js$/, '.ts')))
      else if (!fileName.startsWith('node:')) throw new Error(`${relative(root, file)} imports ${fileName}: this generator loads only node: modules and the project's own`)
    }
    const { outputText } = ts.transpileModule(source, { fileName: file, compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
    const target = join(out, relative(root, file)).replace(/\.ts$/, '.js')
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(target, outputText)
  }
  transpile(entry)
  const { withLockBlock } = await import(pathToFileURL(join(out, relative(root, entry)).replace(/\.ts$/, '.js')).href)
  const before = readFileSync(script, 'utf8')
  const after = withLockBlock(before)
  if (after !== before) writeFileSync(script, after)
} finally {
  rmSync(out, { recursive: true, force: true })
}
