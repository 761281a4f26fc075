// The demo's view of one action run, for a person at a terminal (or reading the demo's output as a
// file): the log with each server's group folded to its title and workflow commands shown as what
// the runner makes of them, then the job summary rendered as text tables instead of Markdown source.
// No dependencies: the demo runs before `npm ci`.
//
//   node demo-view.mjs log FILE       the action's stdout
//   node demo-view.mjs summary FILE   its GITHUB_STEP_SUMMARY
// Colour only when stdout is a terminal (and NO_COLOR is not set).
import { readFileSync } from 'node:fs'

// demo.sh pipes this through sed, so it says whether its own stdout is a terminal (DEMO_COLOR=1)
const colour = (process.stdout.isTTY || process.env.DEMO_COLOR === '1') && !process.env.NO_COLOR
const paint = (code, text) => (colour ? `\x1b[${code}m${text}\x1b[0m` : text)
const bold = text => paint('1', text)
const red = text => paint('31', text)
const yellow = text => paint('33', text)
const dim = text => paint('2', text)

/** A workflow command's data as the runner shows it (@actions/core escapes %, CR, LF, and : , in properties). */
const unescape = text => text.replace(/%0D/g, '').replace(/%0A/g, '\n    ').replace(/%3A/g, ':').replace(/%2C/g, ',').replace(/%25/g, '%')

function showLog(text) {
  let folded = false
  let stopToken
  for (const line of text.split('\n')) {
    if (stopToken !== undefined) {
      if (line.trim() === `::${stopToken}::`) stopToken = undefined
      else if (!folded) console.log(line)
      continue
    }
    const command = /^::([a-z-]+)( [^:]*)?::(.*)$/.exec(line)
    if (!command) {
      // `[s1] pulling`: progress as it happens; each server's group title says how it ended
      if (!folded && line.trim() && !/^\[[^\]\s]+\] [a-z ]+$/.test(line)) console.log(line)
      continue
    }
    const [, name, props = '', data] = command
    if (name === 'group') {
      console.log(`  ${data}`)
      folded = true
    } else if (name === 'endgroup') folded = false
    else if (name === 'stop-commands') stopToken = data
    else if (name === 'error' || name === 'warning') {
      const title = /title=([^,]*)/.exec(props)?.[1]
      const mark = name === 'error' ? red('error') : yellow('warning')
      console.log(`${mark}${title ? ` ${bold(unescape(title))}` : ''}: ${unescape(data)}`)
    }
    // add-mask and the rest are for the runner only
  }
}

/** Markdown of the summary → plain text: headings, paragraphs, tables with aligned columns, details. */
function showSummary(text) {
  // One pass, left to right, as a Markdown renderer reads a line: an escaped character is itself,
  // a code span is its text, and only then do tags, links and emphasis (all ours: a server's `<`,
  // `[` or `_` arrives escaped) turn into plain words.
  const plain = cell => {
    let out = ''
    for (let i = 0; i < cell.length;) {
      const rest = cell.slice(i)
      let m
      if ((m = /^\\([!-/:-@[-`{-~])/.exec(rest))) out += m[1]
      else if ((m = /^(`+)([^]*?[^`])\1(?!`)/.exec(rest))) out += m[2].replace(/^ (.*) $/, '$1').replace(/\\\|/g, '|')
      else if ((m = /^<\/?[a-z][^>]*>/i.exec(rest))) out += ''
      else if ((m = /^\[((?:[^\]\\]|\\.)+)\]\((https?:[^)\s]+)\)/.exec(rest))) out += `${plain(m[1])} <${m[2]}>`
      else if ((m = /^\*\*((?:[^*\\]|\\.)+)\*\*/.exec(rest))) out += plain(m[1])
      else if ((m = /^_((?:[^_\\]|\\.)+)_(?![\w])/.exec(rest)) && !/\w$/.test(out)) out += plain(m[1])
      else if ((m = /^&(lt|gt|amp|quot|#39);/.exec(rest))) out += { lt: '<', gt: '>', amp: '&', quot: '"', '#39': "'" }[m[1]]
      else if ((m = /^\u2060/.exec(rest))) out += ''
      else out += (m = [cell[i]])[0]
      i += m[0].length
    }
    return out.trim()
  }
  const cells = line =>
    line
      .replace(/^\||\|$/g, '')
      .split(/(?<!\\)\|/)
      .map(plain)
  // columns a terminal gives a cell: emoji (and a character made one by VS16) take two, joiners none
  const zeroWidth = new Set(['\u200B', '\u200C', '\u200D', '\u2060', '\uFE0E', '\uFE0F'])
  const width = s => [...s.replace(/\p{Extended_Pictographic}\uFE0F?/gu, '##')].filter(c => !zeroWidth.has(c)).length
  let table = []
  const flush = () => {
    if (!table.length) return
    const widths = table[0].map((_, i) => Math.max(...table.map(row => width(row[i] ?? ''))))
    const format = row =>
      row
        .map((c, i) => (c ?? '').padEnd(widths[i] + (c ?? '').length - width(c ?? '')))
        .join('  ')
        .trimEnd()
    console.log(bold(format(table[0])))
    console.log(dim(widths.map(w => '─'.repeat(w)).join('  ')))
    for (const row of table.slice(1)) console.log(format(row))
    table = []
  }
  let pre = false
  for (const line of text.split('\n')) {
    if (/^\|/.test(line)) {
      if (!/^\|[\s|:-]+\|$/.test(line)) table.push(cells(line))
      continue
    }
    flush()
    if (/^#+ /.test(line)) console.log(bold(plain(line.replace(/^#+ /, ''))))
    else if (/<summary>/.test(line)) console.log(`\n${bold(plain(line))}`)
    else if (/<pre>/.test(line)) {
      pre = !/<\/pre>/.test(line)
      console.log(dim(`    ${plain(line)}`))
    } else if (pre) {
      pre = !/<\/pre>/.test(line)
      console.log(dim(`    ${plain(line)}`))
    } else if (plain(line)) console.log(plain(line))
  }
  flush()
}

const [what, file] = process.argv.slice(2)
const text = readFileSync(file, 'utf8')
if (what === 'log') showLog(text)
else if (what === 'summary') showSummary(text)
else {
  console.error('usage: demo-view.mjs log|summary FILE')
  process.exit(2)
}
