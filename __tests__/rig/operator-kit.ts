// Helpers for the operator kit's tests: bare servers (bare-server.sh), the operator's machine
// (a private HOME and an ssh that knows the bare server), and the shell blocks of the docs that the
// tests run, so the docs show exactly the commands that are tested.
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { repoRoot, rigDir, run, scratchDir, type ExecResult } from './fleet.js'

export const bareScript = join(repoRoot, '__tests__', 'rig', 'bare-server.sh')
export const kitDir = join(repoRoot, 'scripts', 'deployment')

export interface BareServer {
  name: string
  host: string
  port: number
  /** A sudo user (sudo without a password), as many provider images have. */
  admin: string
  /** The operator's key: root and `admin` accept it. */
  adminKeyFile: string
  knownHostsFile: string
  /** ssh_config with the admin key, the server's known_hosts and strict host key checking. */
  sshConfigFile: string
  dir: string
}

function bareEnv(): NodeJS.ProcessEnv {
  return { ...process.env, RIG_DIR: rigDir }
}

/** Brings up bare server NAME (b1..b7) beside the rig's fleet. */
export async function bareUp(name: string): Promise<BareServer> {
  await bareDown(name)
  const r = await run('bash', [bareScript, 'up', name], { env: bareEnv(), timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`bare-server.sh up ${name} failed (exit ${r.code}): ${r.stderr}`)
  return JSON.parse(readFileSync(join(rigDir, 'bare', name, 'server.json'), 'utf8')) as BareServer
}

export async function bareDown(name: string): Promise<void> {
  const r = await run('bash', [bareScript, 'down', name], { env: bareEnv(), timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`bare-server.sh down ${name} failed (exit ${r.code}): ${r.stderr}`)
}

/** Runs a bash command as root inside the bare server (as its console would). */
export function bareExec(name: string, command: string, timeoutMs = 60_000): Promise<ExecResult> {
  return run('bash', [bareScript, 'exec', name, '--', 'bash', '-c', command], { env: bareEnv(), timeoutMs })
}

/**
 * The operator's machine: a fresh HOME (where setup-server.sh keeps the deploy key) and a PATH whose
 * `ssh` uses the bare server's ssh_config, as an operator's ~/.ssh/config and known_hosts would.
 * Nothing of this machine's own ~/.ssh is read or written.
 */
export interface Operator {
  home: string
  env: NodeJS.ProcessEnv
  /** Where setup-server.sh puts the deploy key by default (~/.ssh/openclaw_deploy_ed25519). */
  deployKeyFile: string
}

export function operatorFor(bare: BareServer): Operator {
  const dir = scratchDir('operator')
  const home = join(dir, 'home')
  const bin = join(dir, 'bin')
  mkdirSync(home, { recursive: true })
  mkdirSync(bin, { recursive: true })
  writeFileSync(join(bin, 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F '${bare.sshConfigFile}' "$@"\n`)
  chmodSync(join(bin, 'ssh'), 0o755)
  return {
    home,
    env: { ...process.env, HOME: home, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    deployKeyFile: join(home, '.ssh', 'openclaw_deploy_ed25519')
  }
}

/** ssh to the bare server as `user` with the given key (the deploy key: commands only, no pty). */
export function sshAs(bare: BareServer, user: string, keyFile: string, command: string, input?: string, timeoutMs = 120_000): Promise<ExecResult> {
  return run('ssh', ['-F', bare.sshConfigFile, '-o', `IdentityFile=${keyFile}`, `${user}@${bare.host}`, command], { input, timeoutMs })
}

// ---------------------------------------------------------------------------------------------
// Tested blocks of the docs: a fenced shell block right after a line `<!-- tested: ID -->`.

export const docsDir = join(repoRoot, 'docs', 'deployment')

export interface DocBlock {
  id: string
  /** Repository-relative path of the Markdown file. */
  file: string
  line: number
  text: string
}

/** Markdown files of the operator docs (docs/deployment). */
export function docFiles(): string[] {
  return readdirSync(docsDir)
    .filter(f => f.endsWith('.md'))
    .sort()
    .map(f => join(docsDir, f))
}

/** Every fenced code block of a Markdown file, with its language and the marker before it. */
export function codeBlocks(file: string): Array<{ lang: string; text: string; line: number; tested?: string }> {
  const lines = readFileSync(file, 'utf8').split('\n')
  const blocks: Array<{ lang: string; text: string; line: number; tested?: string }> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i])
    if (!open) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i])
    const marker = /^<!--\s*tested:\s*([a-z0-9-]+)\s*-->\s*$/.exec(lines[start - 1] ?? '')
    blocks.push({ lang: open[1], text: body.join('\n') + '\n', line: start + 1, tested: marker?.[1] })
  }
  return blocks
}

export function testedBlocks(): DocBlock[] {
  return docFiles().flatMap(file =>
    codeBlocks(file)
      .filter(b => b.tested)
      .map(b => ({ id: b.tested!, file: relative(repoRoot, file), line: b.line, text: b.text }))
  )
}

/** The text of tested block ID (the same in every file that shows it). */
export function docBlock(id: string): string {
  const found = testedBlocks().filter(b => b.id === id)
  if (!found.length) throw new Error(`no block marked <!-- tested: ${id} --> in ${relative(repoRoot, docsDir)}`)
  const texts = new Set(found.map(b => b.text))
  if (texts.size > 1) throw new Error(`the blocks marked "${id}" differ between ${found.map(b => `${b.file}:${b.line}`).join(', ')}`)
  return found[0].text
}

/**
 * The block's commands with the values the test provides: a line that only sets one of `vars`
 * (`HOST=203.0.113.10   # the new server`) is the reader's to fill in, so it is dropped and the
 * variable is exported instead.
 */
export function docScript(id: string, vars: Record<string, string> = {}): string {
  const kept = docBlock(id)
    .split('\n')
    .filter(line => {
      const set = /^([A-Z_][A-Z0-9_]*)=\S*(\s+#.*)?$/.exec(line.trim())
      return !(set && set[1] in vars)
    })
  const exports = Object.entries(vars).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'`)
  return ['set -euo pipefail', ...exports, ...kept].join('\n')
}

/** Runs tested block ID with bash on this machine (the operator's), by default from the repository root. */
export function runDocBlock(id: string, vars: Record<string, string>, env: NodeJS.ProcessEnv, cwd = repoRoot, timeoutMs = 180_000): Promise<ExecResult> {
  return run('bash', ['-c', docScript(id, vars)], { env, cwd, timeoutMs })
}
