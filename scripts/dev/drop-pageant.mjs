// ncc copies ssh2's pagent.exe into each bundle folder: a Windows helper that ssh2 runs only to talk
// to PuTTY's Pageant agent (`agent: 'pageant'` on Windows). The action never uses an SSH agent
// (src/remote/ssh.ts passes `agent: undefined`), so the file is dead weight. Removed after the build,
// but only while the bundle's sole use of it is that agent class: any other use fails the build.
// Usage: node scripts/dev/drop-pageant.mjs DIR... (bundle folders, e.g. dist dist/post)
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { URL } from 'node:url'

const ASSET = 'pagent.exe'
const AGENT_START = 'const PageantAgent = (() => {'
const AGENT_END = '\n})();'

const ssh = readFileSync(new URL('../../src/remote/ssh.ts', import.meta.url), 'utf8')
const agents = ssh.match(/\bagent\s*:[^,\n]*/g) ?? []
if (agents.length === 0 || agents.some(a => !/^agent\s*:\s*undefined$/.test(a.trim()))) {
  throw new Error(`src/remote/ssh.ts no longer passes only "agent: undefined" to ssh2: check whether ${ASSET} is needed before dropping it`)
}

for (const dir of process.argv.slice(2)) {
  if (!existsSync(join(dir, ASSET))) continue
  for (const file of readdirSync(dir).filter(f => f.endsWith('.js'))) {
    const code = readFileSync(join(dir, file), 'utf8')
    const start = code.indexOf(AGENT_START)
    const end = start < 0 ? -1 : code.indexOf(AGENT_END, start)
    // ncc rewrites a use of the asset to `__nccwpck_require__.ab + "pagent.exe"`
    for (let at = code.indexOf(`"${ASSET}"`); at >= 0; at = code.indexOf(`"${ASSET}"`, at + 1)) {
      if (start < 0 || at < start || at > end) {
        const line = code.slice(0, at).split('\n').length
        throw new Error(`${join(dir, file)}:${line} uses ${ASSET} outside ssh2's PageantAgent: it may be needed, so it is kept; check and update scripts/dev/drop-pageant.mjs`)
      }
    }
  }
  rmSync(join(dir, ASSET))
}
