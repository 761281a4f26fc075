/**
 * Everything that runs on a server, in one file. Each step is a constant bash script; the values
 * it works on (paths, image references, service names) are passed as positional arguments, quoted
 * by shell.ts. No value is ever pasted into script text, so no registry entry or input can change
 * the shape of a command.
 *
 * Scripts report facts on stdout as `key=value` lines (see parseFacts) and explain failures with an
 * `error=` line and a non-zero exit code.
 */
import { createHash, randomBytes } from 'node:crypto'
import { quote, shellJoin } from './shell.js'

export interface RemoteCommand {
  /** What the step is called in logs and errors. */
  step: string
  script: string
  args: string[]
  /** Sent to the command's standard input. */
  stdin?: string
  /** Renew this run's deploy lock before the step (see withLease). */
  lease?: { state: string; token: string }
  /** Run only while holding the server's switch lock, for at most `seconds` (see exclusive). */
  exclusive?: { state: string; seconds: number }
  /** Set on a sequence (see `sequence`): the steps it runs in one channel, in order, and how far. */
  parts?: Part[]
  until?: 'failure' | 'end'
}

/** One step of a sequence, and how long its own remote `timeout` lets it run. */
export interface Part {
  command: RemoteCommand
  seconds: number
}

/**
 * The exit codes of the remote steps, by name: the scripts exit with these numbers (interpolated
 * into them) and the runner's side tells outcomes apart by them.
 */
export const EXIT_CODE = {
  /** The step failed and says why on its `error=` line (every script's `fail`). */
  failed: 3,
  /** Another run holds the deploy lock (takeLock). */
  lockHeld: 4,
  /** The gateway did not become healthy (healthCheck). */
  unhealthy: 5,
  /** This run no longer holds the deploy lock (the lease renewal before a step). */
  lockLost: 6,
  /** Nothing needed changing, so the steps after it in a sequence did not run (setEnvVariables). */
  unchanged: 7,
  /** `timeout` (renderCommand) stopped the step at its bound, with TERM ... */
  timedOut: 124,
  /** ... or had to KILL it (128 + 9). */
  killed: 137
} as const

/** Seconds between the remote `timeout` sending TERM and KILL. */
const KILL_AFTER = 5

/**
 * The command line sshd runs: the remote `timeout` bounds the step even if our side loses the
 * connection, and `bash -c` gets the constant script with the values as $1, $2, …
 */
export function renderCommand(command: RemoteCommand, timeoutSeconds: number): string {
  let { script, args } = command
  if (command.exclusive) ({ script, args } = underSwitchLock({ ...command, script, args }, command.exclusive))
  if (command.lease) ({ script, args } = leased({ ...command, script, args }, command.lease, timeoutSeconds))
  return shellJoin(['timeout', '-k', String(KILL_AFTER), String(timeoutSeconds), 'bash', '-c', script, `openclaw-${command.step}`, ...args])
}

/** The step preceded by the lease renewal, in one round trip; the renewal leaves stdin to the step. */
function leased(command: RemoteCommand, lease: { state: string; token: string }, timeoutSeconds: number): { script: string; args: string[] } {
  return {
    args: [lease.state, lease.token, String(leaseSeconds(timeoutSeconds)), ...command.args],
    script: `bash -c ${quote(RENEW_LEASE)} openclaw-lease "$1" "$2" "$3" </dev/null || exit
shift 3
exec ${nested(command)} "$@"`
  }
}

/** `bash -c SCRIPT openclaw-STEP`: a step's script run inside another script; its arguments follow. */
function nested(command: RemoteCommand): string {
  return `bash -c ${quote(command.script)} ${quote(`openclaw-${command.step}`)}`
}

/**
 * Several steps in one channel, so one round trip: each part runs its own constant script with its
 * own arguments under its own remote `timeout`, between marker lines (a start line on stdout and
 * stderr, an end line with its exit code on stdout) that `splitSequence` reads back. The markers
 * carry a fresh random word ($1), so no text a step prints matches them by accident.
 * `until: 'failure'` stops at the first part that exits non-zero and exits with its code; `'end'`
 * runs every part and exits with the first non-zero code. At most one part reads the channel's
 * stdin; the others read /dev/null. A lease or the switch lock given to the sequence covers all parts.
 */
export function sequence(step: string, parts: Part[], until: 'failure' | 'end'): RemoteCommand {
  const readers = parts.filter(p => p.command.stdin !== undefined)
  if (readers.length > 1) throw new Error(`a sequence gives stdin to one part only: ${readers.map(p => p.command.step).join(', ')}`)
  let next = 2
  const lines = parts.map(({ command, seconds }) => {
    const first = next
    next += command.args.length
    const args = command.args.length ? ` "\${@:${first}:${command.args.length}}"` : ''
    const stdin = command.stdin === undefined ? ' </dev/null' : ''
    const after = until === 'failure' ? '[ "$code" -eq 0 ] || exit "$code"' : '[ "$code" -eq 0 ] || [ "$rc" -ne 0 ] || rc=$code'
    return `start "$1" ${quote(command.step)}
timeout -k ${KILL_AFTER} ${seconds} ${nested(command)}${args}${stdin}
code=$?; printf '\\n%s%s end %s\\n' '${PART_MARK}' "$1" "$code"; ${after}`
  })
  return {
    step,
    args: [randomBytes(8).toString('hex'), ...parts.flatMap(p => p.command.args)],
    stdin: readers[0]?.command.stdin,
    parts,
    until,
    script: `rc=0
start() { printf '%s%s start %s\\n' '${PART_MARK}' "$1" "$2"; printf '%s%s start %s\\n' '${PART_MARK}' "$1" "$2" >&2; }
${lines.join('\n')}
exit "$rc"`
  }
}

/** The remote bound of a sequence: every part's own bound and the KILL after it. */
export function sequenceSeconds(parts: Part[]): number {
  return parts.reduce((sum, p) => sum + p.seconds + KILL_AFTER, 0)
}

const PART_MARK = '--- openclaw part '

/** What a sequence prints for one part that ran to its end (the shape splitSequence reads; for fakes of a server). */
export function partOutput(sequence: RemoteCommand, step: string, stdout: string, stderr: string, code: number): { stdout: string; stderr: string } {
  const mark = `${PART_MARK}${sequence.args[0]}`
  return { stdout: `${mark} start ${step}\n${stdout}\n${mark} end ${code}\n`, stderr: `${mark} start ${step}\n${stderr}\n` }
}

/** What one part of a sequence printed and how it ended; `code` is undefined when it never ended. */
export interface PartResult {
  step: string
  code: number | undefined
  stdout: string
  stderr: string
}

/**
 * A sequence's output, part by part, for the parts that started (in order). The server's text is
 * untrusted: at worst it mislabels its own output. When the channel failed but every part seems to
 * have succeeded, the last one is taken for the one that failed.
 */
export function splitSequence(command: RemoteCommand, output: { stdout: string; stderr: string; code?: number }): PartResult[] {
  const parts = command.parts ?? []
  const mark = `${PART_MARK}${command.args[0]} `
  // (stderr has start lines only: a part's stderr runs to the next part's start)
  const cut = (text: string, ends: boolean) => {
    const found: { text: string; code?: number }[] = []
    for (const line of text.split('\n')) {
      const open = found.at(-1)
      if (line === `${mark}start ${parts[found.length]?.command.step}` && (!open || !ends || open.code !== undefined)) found.push({ text: '' })
      else if (ends && open && open.code === undefined && /^\d+$/.test(line.slice(`${mark}end `.length)) && line.startsWith(`${mark}end `)) {
        open.code = Number(line.slice(`${mark}end `.length))
        open.text = open.text.replace(/\n$/, '')
      } else if (open && (!ends || open.code === undefined)) open.text += `${line}\n`
    }
    return found
  }
  const out = cut(output.stdout, true)
  const err = cut(output.stderr, false)
  const results: PartResult[] = out.map((o, i) => ({ step: parts[i]!.command.step, code: o.code, stdout: o.text, stderr: err[i]?.text.replace(/\n+$/, '') ?? '' }))
  const last = results.at(-1)
  if (last && output.code && results.every(r => r.code === 0)) last.code = output.code
  return results
}

/** Parses `key=value` lines; a key seen twice keeps all values in order. */
export function parseFacts(stdout: string): Map<string, string[]> {
  const facts = new Map<string, string[]>()
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=')
    if (eq <= 0 || !/^[a-z_]+$/.test(line.slice(0, eq))) continue
    const key = line.slice(0, eq)
    facts.set(key, [...(facts.get(key) ?? []), line.slice(eq + 1)])
  }
  return facts
}

/** Where the action keeps its lock, rollback record and history on the server. */
export function stateDir(path: string): string {
  return `${path.replace(/\/+$/, '')}/.openclaw-deploy`
}

/** Every step's start: unset variables are errors, and `fail` explains a failure (also authorized-keys.ts's steps). */
export const PRELUDE = `set -u
fail() { printf 'error=%s\\n' "$*"; exit ${EXIT_CODE.failed}; }
`

/** Seconds a lease outlives the remote bound of the step it covers (client and network slack). */
const LEASE_SLACK = 30
/** The lease that covers a step bounded by `timeoutSeconds` (its KILL after it, and slack). */
export function leaseSeconds(timeoutSeconds: number): number {
  return timeoutSeconds + KILL_AFTER + LEASE_SLACK
}

/** A lock folder with no holder note for this long was left by a run killed while taking it. */
const NOTE_LESS_ABANDONED_AFTER = 60

/** Shell function: fails the step, saying so, when the server lacks flock (util-linux). */
const NEED_FLOCK = `need_flock() { command -v flock >/dev/null || fail "flock (util-linux) is not installed on the server; the deploy lock needs it"; }
`

/**
 * The deploy lock is a folder `lock/` with a `holder` note: the holder's text (with its token) and
 * `expires=<epoch seconds>` of the server's clock. Every change to it (take, take over, renew,
 * release) happens under `flock` on `lock.guard`, so two runs can never both think they hold it;
 * the kernel drops that guard when a killed shell's file closes. A lock whose note has no
 * `expires=` line (older versions of this action or of backup-openclaw.sh) is never taken over.
 * backup-openclaw.sh runs these same scripts (a generated copy: src/remote/script-lock.ts).
 */
const LOCK_FUNCTIONS = `note=$state/lock/holder
${NEED_FLOCK}guard() {
  need_flock
  { exec 9>>"$state/lock.guard"; } 2>/dev/null || fail "cannot open the lock guard $state/lock.guard as $(id -un)"
  flock -w 10 9 || fail "another process kept the lock guard $state/lock.guard busy for 10 s"
}
unguard() { exec 9>&-; }
write_note() {
  printf '%s\\nexpires=%s\\n' "$1" "$(($(date +%s) + lease))" > "$note.tmp" && mv -f -- "$note.tmp" "$note"
}
holder_text() { head -n 1 -- "$note" 2>/dev/null; }
# a holder as others see it: without its token (only the holder's own steps need it) and bounded
shown() { printf '%s' "$1" | sed 's/ token=[^ ]*//g' | head -c 400; }
expiry() { sed -n 's/^expires=\\([0-9][0-9]*\\)$/\\1/p' -- "$note" 2>/dev/null | tail -n 1; }
`

/**
 * Takes the server's deploy lock for `leaseSeconds`, waiting up to `waitSeconds` for another
 * holder. A lock whose lease has expired (its run was killed or lost the server) is taken over and
 * named on a `took_over=` line. When the lock stays held, reports the holder and exits EXIT_CODE.lockHeld.
 */
export function takeLock(path: string, holder: string, waitSeconds: number, leaseSeconds = LEASE_SLACK): RemoteCommand {
  return {
    step: 'lock',
    args: [path, stateDir(path), holder, String(waitSeconds), String(leaseSeconds)],
    script:
      PRELUDE +
      `state=$2 holder=\${3//[$'\\n\\r']/ } wait=$4 lease=$5
# A mistyped path must not be created (the deploy would then fail later with "no docker-compose.yml").
[ -d "$1" ] || fail "deployment folder $1 does not exist on $(hostname): set the server's path in the registry to the folder that holds docker-compose.yml and .env"
# Two runs may create it at once: the one that loses the race finds it made.
mkdir -- "$state" 2>/dev/null || [ -d "$state" ] || fail "cannot create $state as $(id -un)"
${LOCK_FUNCTIONS}deadline=$((SECONDS + wait))
while :; do
  guard
  if out=$(LC_ALL=C mkdir -- "$state/lock" 2>&1); then
    write_note "$holder" || { rm -rf -- "$state/lock"; fail "cannot write the lock note $note as $(id -un)"; }
    echo locked=yes
    exit 0
  fi
  case $out in *"File exists"*) ;; *) fail "cannot create the lock $state/lock: \${out#mkdir: }" ;; esac
  now=$(date +%s) expires=$(expiry) old=$(shown "$(holder_text)")
  if [ -n "$expires" ] && [ "$expires" -le "$now" ]; then
    write_note "$holder" || fail "cannot write the lock note $note as $(id -un)"
    printf 'took_over=%s\\nexpired_for=%s\\n' "$old" "$((now - expires))"
    echo locked=yes
    exit 0
  fi
  if [ -d "$state/lock" ] && [ ! -e "$note" ] && [ $((now - $(stat -c %Y -- "$state/lock" 2>/dev/null || echo "$now"))) -ge ${NOTE_LESS_ABANDONED_AFTER} ]; then
    write_note "$holder" || fail "cannot write the lock note $note as $(id -un)"
    printf 'took_over=%s\\n' "a run that died while taking the lock (no holder note for over ${NOTE_LESS_ABANDONED_AFTER}s)"
    echo locked=yes
    exit 0
  fi
  unguard
  if [ "$SECONDS" -ge "$deadline" ]; then
    printf 'holder=%s\\nexpires_in=%s\\n' "$old" "\${expires:+$((expires - now))}"
    exit ${EXIT_CODE.lockHeld}
  fi
  sleep 1
done`
  }
}

/**
 * Commands that change what runs (retag, write .env, compose up, the rollback record) hold `flock`
 * on `switch.lock` while they run. A step left running by a lost connection still holds it, so the
 * recovery's rollback waits for it instead of racing it. The wait is bounded: a step under the lock
 * is itself bounded by `timeout`, so it has ended by then.
 */
function underSwitchLock(command: RemoteCommand, lock: { state: string; seconds: number }): { script: string; args: string[] } {
  return {
    args: [lock.state, String(switchWaitSeconds(lock.seconds)), String(lock.seconds), ...command.args],
    script:
      PRELUDE +
      `state=$1 wait=$2 limit=$3
shift 3
${NEED_FLOCK}need_flock
{ exec 8>>"$state/switch.lock"; } 2>/dev/null || fail "cannot open the switch lock $state/switch.lock as $(id -un)"
flock -w "$wait" 8 || fail "another command that switches this server (left running by a lost connection?) still held $state/switch.lock after \${wait}s"
exec timeout -k ${KILL_AFTER} "$limit" ${nested(command)} "$@"`
  }
}

/** How long a switching step waits for the switch lock: any earlier holder has been killed by then. */
function switchWaitSeconds(stepSeconds: number): number {
  return stepSeconds + KILL_AFTER + 1
}

/**
 * Marks a step that changes what runs on the server (see underSwitchLock); it runs for at most
 * `stepSeconds` once it holds the switch lock. Render it with `exclusiveTimeout(stepSeconds)`.
 */
export function exclusive(path: string, command: RemoteCommand, stepSeconds: number): RemoteCommand {
  return { ...command, exclusive: { state: stateDir(path), seconds: stepSeconds } }
}

/** The whole bound of an exclusive step: the wait for the switch lock, then the step and its KILL. */
export function exclusiveTimeout(stepSeconds: number): number {
  return switchWaitSeconds(stepSeconds) + stepSeconds + KILL_AFTER
}

/** Renews a lease (see withLease): $1 state folder, $2 token, $3 seconds from now. */
const RENEW_LEASE =
  PRELUDE +
  `state=$1 token=$2 lease=$3
${LOCK_FUNCTIONS}guard
if [ -z "$token" ] || ! grep -qF -- "token=$token" "$note" 2>/dev/null; then
  printf 'lock_lost=%s\\n' "$(shown "$(holder_text)")"
  echo "error=this run no longer holds the deploy lock $state/lock (its lease expired and another run took it over, or it was removed)"
  exit ${EXIT_CODE.lockLost}
fi
write_note "$(holder_text)" || fail "cannot renew the lock note $note as $(id -un)"`

/**
 * The lease renewal on its own: $1 state folder, $2 token, $3 seconds. backup-openclaw.sh runs it
 * between its phases (see src/remote/script-lock.ts); the action's steps get it from withLease.
 */
export function renewLease(path: string, token: string, seconds: number): RemoteCommand {
  return { step: 'lease', args: [stateDir(path), token, String(seconds)], script: RENEW_LEASE }
}

/**
 * Marks a step to run under this run's lock: before the step, the server renews the lease for the
 * step's whole remote bound (its timeout, the KILL after it, and slack), so a long pull or health
 * wait never loses the lock, and a run killed mid-step leaves a lock that expires soon after the
 * step would have been ended anyway. When the lock is no longer this run's, the step does not run:
 * exit EXIT_CODE.lockLost with a `lock_lost=` line naming the holder.
 */
export function withLease(path: string, token: string, command: RemoteCommand): RemoteCommand {
  return { ...command, lease: { state: stateDir(path), token } }
}

/**
 * Releases the lock only if this run still holds it (the holder note carries our token). Without a
 * lock folder there is nothing to release, also where the state folder was never made (the post
 * step asks every server of a cancelled run, some of which it never reached).
 */
export function releaseLock(path: string, token: string): RemoteCommand {
  return {
    step: 'unlock',
    args: [stateDir(path), token],
    script:
      PRELUDE +
      `state=$1 token=$2 lease=0
[ -d "$state/lock" ] || { echo released=not-ours; exit 0; }
${LOCK_FUNCTIONS}guard
if [ -n "$token" ] && grep -qF -- "token=$token" "$note" 2>/dev/null; then rm -rf -- "$state/lock"; echo released=yes; else echo released=not-ours; fi`
  }
}

/**
 * Shell functions for the project's `.env`, parsed as Compose parses it (compose-go's dotenv, checked
 * against Compose 2.26 by env-file.test.ts): the last assignment of a name wins, `export ` and blanks
 * around `=` are allowed, an unquoted value ends at ` #` (a comment) and loses trailing blanks, a
 * quoted value ends at the first quote not escaped by a backslash (in either kind of quotes) and may
 * span lines, and an assignment inside such a value is not one. The file never leaves the server:
 * the runner sees only the image variable's value, and sends only names and new values.
 *
 * env_find NAME FILE prints `START END QUOTE` for the value of NAME's last assignment: byte offsets
 * of the value as written (with its quotes, if any), QUOTE one of `"`, `'` or `-` (unquoted), and a
 * fourth word `multiline` when the value spans lines; `unterminated` when its quotes never close; or
 * nothing when NAME is not assigned.
 * env_value NAME FILE prints the value's bytes as written, inside its quotes. redact FILE copies
 * stdin to stdout with every word of 4 or more bytes of the file's values replaced by `[redacted]`, as
 * it is and as JSON and Go's %q and %+q write it (`\\`, `\"`, `\u003c` for `<`, `>`, `&`, non-ASCII
 * as `\u` escapes), so a Docker or Compose message that quotes `.env` shows no secret.
 */
const ENV_FUNCTIONS = String.raw`env_find() {
  LC_ALL=C awk -v name="$1" '
    function closes(s, from, q,   i, c) {
      for (i = from; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\") { i++; continue }
        if (c == q) return i
      }
      return 0
    }
    {
      line = $0; size = length($0) + 1
      sub(/\r$/, "", line)
      if (inq != "") {
        c = closes(line, 1, inq)
        if (c) { if (ours) found = open " " (off + c) " " inq " multiline"; inq = ""; ours = "" }
        off += size; next
      }
      if (match(line, /^[ \t]*(export[ \t]+)?[A-Za-z0-9_.-]+[ \t]*=[ \t]*/)) {
        head = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
        n = head; sub(/^[ \t]*(export[ \t]+)?/, "", n); sub(/[ \t]*=.*$/, "", n)
        q = substr(rest, 1, 1); at = off + length(head)
        if (q == "\"" || q == "'"'"'") {
          c = closes(rest, 2, q)
          if (c == 0) { inq = q; ours = n == name; open = at; off += size; next }
          if (n == name) found = at " " (at + c) " " q
        } else if (n == name) {
          v = rest
          if (p = index(v, " #")) v = substr(v, 1, p - 1)
          sub(/[ \t]+$/, "", v)
          found = at " " (at + length(v)) " -"
        }
      }
      off += size
    }
    END { if (inq != "" && ours) print "unterminated"; else if (found != "") print found }' "$2"
}
env_value() {
  local at s e q
  at=$(env_find "$1" "$2") && [ -n "$at" ] && [ "$at" != unterminated ] || return 1
  read -r s e q _ <<< "$at"
  if [ "$q" != - ]; then s=$((s + 1)) e=$((e - 1)); fi
  tail -c +$((s + 1)) -- "$2" | head -c $((e - s))
}
redact() { # (the calling script sets image_variable: its value is an image reference, not a secret)
  LC_ALL=C awk -v envf="$1" -v keep="$image_variable" '
    function hex(n, digits,   h) {
      for (h = ""; digits > 0; digits--) { h = substr("0123456789abcdef", n % 16 + 1, 1) h; n = int(n / 16) }
      return h
    }
    # w as a JSON encoder or Go (%q, %+q) writes it inside quotes: \ and " escaped; with html, < > &
    # as \u escapes (Go encoding/json); with ascii, each UTF-8 character past ASCII as \u (a surrogate
    # pair past U+FFFF; \U with astral "U", as Go %+q)
    function quoted(w, html, ascii, astral,   out, i, j, c, b, cp, len, ok) {
      out = ""
      for (i = 1; i <= length(w); i++) {
        c = substr(w, i, 1); b = ord[c]
        if (c == "\\" || c == "\"") { out = out "\\" c; continue }
        if (html && c == "<") { out = out "\\u003c"; continue }
        if (html && c == ">") { out = out "\\u003e"; continue }
        if (html && c == "&") { out = out "\\u0026"; continue }
        if (ascii && b >= 192 && b < 248) {
          len = (b < 224) ? 2 : ((b < 240) ? 3 : 4); cp = b % ((len == 2) ? 32 : ((len == 3) ? 16 : 8)); ok = 1
          for (j = 1; j < len; j++) { b = ord[substr(w, i + j, 1)]; if (b < 128 || b >= 192) { ok = 0; break }; cp = cp * 64 + b - 128 }
          if (ok) {
            i += len - 1
            if (cp < 65536) out = out "\\u" hex(cp, 4)
            else if (astral == "U") out = out "\\U" hex(cp, 8)
            else { cp -= 65536; out = out "\\u" hex(55296 + int(cp / 1024), 4) "\\u" hex(56320 + cp % 1024, 4) }
            continue
          }
        }
        out = out c
      }
      return out
    }
    function add(w) { if (length(w) >= 4 && !(w in seen)) { seen[w] = 1; word[++k] = w } }
    # a value as written, and as JSON and Go (%q, %+q) quote it: Compose errors quote values so
    function addForms(w) {
      if (length(w) < 4 || index(w, "\001")) return
      add(w); add(quoted(w, 0, 0)); add(quoted(w, 1, 0)); add(quoted(w, 0, 1)); add(quoted(w, 1, 1)); add(quoted(w, 0, 1, "U")); add(quoted(w, 1, 1, "U"))
    }
    BEGIN {
      for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i
      while ((getline l < envf) > 0) {
        if (l ~ /^[ \t]*#/) continue
        if (keep != "" && l ~ ("^[ \t]*(export[ \t]+)?" keep "[ \t]*=")) continue
        if (match(l, /^[ \t]*(export[ \t]+)?[A-Za-z0-9_.-]+[ \t]*=/)) l = substr(l, RLENGTH + 1)
        # the whole value (its quotes and outer blanks off), and each of its words: a word alone may be quoted
        v = l; sub(/^[ \t]+/, "", v); sub(/[ \t\r]+$/, "", v)
        if (v ~ /^".*"$/ || v ~ /^'"'"'.*'"'"'$/) v = substr(v, 2, length(v) - 2)
        addForms(v)
        n = split(l, ws, /[ \t"'"'"'=\r\001]+/)
        for (i = 1; i <= n; i++) addForms(ws[i])
      }
      # longest first, so no part of a longer word is left after a shorter one inside it is replaced
      for (i = 2; i <= k; i++) for (j = i; j > 1 && length(word[j]) > length(word[j - 1]); j--) { t = word[j]; word[j] = word[j - 1]; word[j - 1] = t }
    }
    {
      # each match becomes \001 (never in a word) first, so a word inside "[redacted]" is never replaced again
      s = $0
      for (i = 1; i <= k; i++) {
        out = ""
        while ((p = index(s, word[i])) > 0) { out = out substr(s, 1, p - 1) "\001"; s = substr(s, p + length(word[i])) }
        s = out s
      }
      gsub(/\001/, "[redacted]", s)
      print s
    }'
}
# said TEXT N: the last N non-blank lines of a command's output, on one line, redacted
said() { printf '%s\n' "$1" | grep -v '^[[:space:]]*$' | tail -n "$2" | redact .env | tr '\n' ' '; }
`

/**
 * The state of every container, one line each: `service|image|image ID|state|restarting|restarts|exit
 * code|restart policy`. The health rule (HEALTH_RULE) and the runner read this shape.
 */
const CONTAINER_FORMAT =
  '{{index .Config.Labels "com.docker.compose.service"}}|{{.Config.Image}}|{{.Image}}|{{.State.Status}}|{{.State.Restarting}}|{{.RestartCount}}|{{.State.ExitCode}}|{{.HostConfig.RestartPolicy.Name}}'

/**
 * Whether containers are healthy, in one place for deploy, rollback and status. Reads CONTAINER_FORMAT
 * lines; prints one word per container, `service:state:exit code:restarts:policy:ok|bad`, and exits 0
 * when at least one runs and none is bad. Bad: restarting, dead, paused, exited with a non-zero code,
 * or not running although it has a restart policy. A container that exited 0 and has no restart policy
 * (a one-shot job, or upstream's interactive openclaw-cli, which `up` starts and which then exits) is not.
 */
const HEALTH_RULE = String.raw`judge() {
  awk -F'|' '
    NF >= 8 {
      st = $4; if ($5 == "true") st = "restarting"
      policy = $8; if (policy == "") policy = "no"
      bad = st == "restarting" || st == "dead" || st == "paused" || st == "removing" || (st == "exited" && $7 != "0") || (policy != "no" && st != "running")
      if (st == "running") running++
      if (bad) nbad++
      printf "%s%s:%s:%s:%s:%s:%s", sep, $1, st, $7, $6, policy, bad ? "bad" : "ok"; sep = " "
    }
    END { if (sep == "") printf "none"; exit (running > 0 && nbad == 0) ? 0 : 1 }'
}
`

/** Shell lines: the project's compose file, as Compose looks for it, in $compose (run in the project folder, $1). */
const FIND_COMPOSE = `compose=
for f in compose.yaml compose.yml docker-compose.yaml docker-compose.yml; do
  if [ -f "$f" ]; then compose=$f; break; fi
done
[ -n "$compose" ] || fail "no docker-compose.yml or compose.yaml in $1"
`

/** Shell function: one GET of $url, its HTTP status in $code (000 when nothing answered within 5 s). */
const PROBE = `probe() {
  if command -v curl >/dev/null; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -- "$url") || code=000
  elif wget -q -O /dev/null -T 5 -- "$url"; then code=200; else code=000; fi
}
`

/**
 * Checks the folder, compose file, .env and Docker, and reads what the runner needs to know: the
 * image variable's value (`image_var=`, absent when .env does not set it), each service of the
 * project with whether its image comes from that variable and its restart policy
 * (`service=NAME|yes|no|POLICY`, read from the compose file without interpolating .env), and one
 * `container=` line per container (CONTAINER_FORMAT). Nothing else of .env leaves the server.
 */
export function preflight(path: string, imageVariable: string): RemoteCommand {
  return {
    step: 'preflight',
    args: [path, imageVariable],
    script:
      PRELUDE +
      ENV_FUNCTIONS +
      `image_variable=$2
cd -- "$1" 2>/dev/null || fail "deployment folder $1 does not exist or $(id -un) cannot enter it"
${FIND_COMPOSE}[ -f .env ] || fail "no .env in $1"
{ [ -r .env ] && [ -w .env ]; } || fail ".env in $1 is not readable and writable by $(id -un)"
command -v docker >/dev/null || fail "docker is not installed or not on the PATH of $(id -un)"
out=$(docker info --format '{{.ServerVersion}}' 2>&1) || fail "cannot reach the Docker daemon as $(id -un): $(said "$out" 2)"
docker compose version >/dev/null 2>&1 || fail "the Docker Compose v2 plugin is missing ('docker compose version' failed)"
command -v curl >/dev/null || command -v wget >/dev/null || fail "neither curl nor wget is installed (needed for the health check)"
printf 'compose=%s\\n' "$compose"
at=$(env_find "$image_variable" .env) || fail "cannot read .env in $1"
case $at in *multiline | unterminated) fail "the value of $image_variable in $1/.env is quoted and spans several lines: put the image reference on one line" ;; esac
if [ -n "$at" ]; then printf 'image_var=%s\\n' "$(env_value "$image_variable" .env | tr -d '\\n\\r')"; fi
# --no-interpolate: the services as the compose file writes them, with no value of .env in them
config=$(docker compose config --no-interpolate 2>&1) || fail "docker compose cannot read the project in $1: $(said "$config" 3)"
printf '%s\\n' "$config" | awk -v var="$image_variable" '
  function out() {
    uses = "no"
    if (index(img, "\${" var "}") || index(img, "\${" var ":") || index(img, "\${" var "-") || index(img, "\${" var "?") || index(img, "\${" var "+") || img ~ ("[$]" var "([^A-Za-z0-9_]|$)")) uses = "yes"
    gsub(/["'"'"']/, "", rst)
    printf "service=%s|%s|%s\\n", name, uses, rst
    name = ""
  }
  /^services:/ { s = 1; next }
  s && /^[^ ]/ { if (name != "") out(); s = 0 }
  s && /^  [^ ]/ { if (name != "") out(); name = $0; sub(/^  /, "", name); sub(/:$/, "", name); img = ""; rst = ""; next }
  s && /^    image: / { img = substr($0, 12) }
  s && /^    restart: / { rst = substr($0, 14) }
  END { if (name != "") out() }'
ids=$(docker compose ps -a -q 2>&1) || fail "docker compose cannot list the containers in $1: $(said "$ids" 3)"
if [ -n "$ids" ]; then
  # shellcheck disable=SC2086
  docker inspect --format 'container=${CONTAINER_FORMAT}' -- $ids
fi`
  }
}

/** Characters of Docker's own words kept in a failed pull's message: enough for its reason, not a log. */
const PULL_REASON_CHARS = 400

/**
 * Pulls an image and prints the local image ID it resolves to. A failed pull says why in Docker's
 * words ("manifest unknown", "unauthorized", "no such host"): the last lines of its stderr that are
 * not layer progress, on one line.
 */
export function pullImage(image: string): RemoteCommand {
  return {
    step: 'pull',
    args: [image],
    script:
      PRELUDE +
      `if ! out=$(docker pull -q -- "$1" 2>&1 >/dev/null); then
  why=$(printf '%s\\n' "$out" | grep -Ev '^[[:space:]]*$|^[0-9a-f]{12}: ' | tail -n 3 | tr -s '\\n\\r\\t' '   ' | cut -c 1-${PULL_REASON_CHARS})
  fail "docker pull $1 failed: \${why:-docker gave no reason}"
fi
printf 'image_id=%s\\n' "$(docker image inspect --format '{{.Id}}' -- "$1")"`
  }
}

/** Who logs in to which registry before a pull (see pullImageWithLogin); `password` is a secret. */
export interface RegistryLogin {
  registry: string
  username: string
  password: string
}

/**
 * What the pull's Docker config holds before `docker login` writes to it: one auth entry, for a
 * registry that cannot exist (`.invalid` is reserved, RFC 2606). It is there so that Docker keeps the
 * login in this file. With no auth in its config the docker CLI picks a credential store of its own:
 * `LoadDefaultConfigFile` in docker/cli cli/config/config.go runs `if !configFile.ContainsAuth() {
 * configFile.CredentialsStore = credentials.DetectDefaultStore(configFile.CredentialsStore) }`, where
 * `ContainsAuth()` (cli/config/configfile/file.go) is `credsStore != "" || len(credHelpers) > 0 ||
 * len(auths) > 0`, and on Linux `DetectDefaultStore` (cli/config/credentials/default_store*.go) names
 * `pass` when the `pass` program is installed, else `secretservice`, whenever
 * `docker-credential-<that>` is on the PATH. `docker login` would then hand the password to that
 * helper, into the user's password store or keyring, where it outlives the folder (with docker
 * 28.2.2 and a stand-in `docker-credential-pass` on the PATH: called with `store`, and the folder's
 * config left with `"credsStore": "pass"`). One entry in `auths` makes `ContainsAuth()` true, so no
 * store is detected and `GetCredentialsStore` returns the file store: the login lands in this
 * folder's config.json, next to the placeholder, and goes with the folder.
 */
const LOGIN_CONFIG = '{"auths":{"openclaw-deploy.invalid":{}}}'

/**
 * pullImage after `docker login` into a Docker config folder of its own, made for this pull (mode
 * 700, under the deploy user's TMPDIR, holding LOGIN_CONFIG so that the login stays in the folder)
 * and removed when the step ends, whatever its outcome: on success, failure, the remote timeout's
 * TERM, a hangup, or a channel whose stdout closed (SIGPIPE). The user's own `~/.docker/config.json`
 * and its logins are never read or changed. Only a SIGKILL skips the removal; such folders are swept
 * by the next login pull of the same user: each pull holds a `flock` on its folder while it runs, so
 * a folder of ours over a minute old whose lock is free belongs to no live pull. The password arrives
 * on the step's stdin and goes to `docker login --password-stdin` through a pipe from a shell
 * builtin: never in a command line, an environment, a file of ours or any output (a reason Docker
 * gives has it cut out, should Docker ever quote it). The username is no secret: an argument.
 * A failed login exits 3 with `error=docker login to REGISTRY as USER failed: <Docker's reason>`,
 * before anything is pulled.
 */
export function pullImageWithLogin(image: string, login: RegistryLogin): RemoteCommand {
  if (login.password.includes('\0')) throw new Error('a registry password cannot hold a NUL character')
  return {
    step: 'pull',
    args: [image, login.registry, login.username],
    stdin: login.password,
    script:
      PRELUDE +
      NEED_FLOCK +
      `registry=$2 user=$3 password= config=
# set before the folder exists, so no moment is left uncovered ($config is empty until mktemp made it)
trap '[ -z "$config" ] || rm -rf -- "$config"' EXIT
trap 'exit 143' TERM INT HUP
trap 'exit 141' PIPE
IFS= read -r -d '' password || [ -n "$password" ] || fail "no registry password arrived (connection cut?); nothing was pulled"
need_flock
umask 077
base=\${TMPDIR:-/tmp}
# folders of pulls killed with SIGKILL: this user's, their flock free (a pull takes it at once: over a minute old)
find "$base" -maxdepth 1 -type d -name 'openclaw-docker-config.*' -user "$(id -u)" -mmin +1 -exec flock -n {} rm -rf -- {} \\; 2>/dev/null
{ config=$(mktemp -d "$base/openclaw-docker-config.XXXXXXXXXX") && exec 7<"$config" && flock -n 7 && printf '%s\\n' '${LOGIN_CONFIG}' > "$config/config.json"; } 2>/dev/null ||
  fail "cannot make a temporary Docker config folder in $base as $(id -un)"
if ! out=$(printf '%s' "$password" | docker --config "$config" login --username="$user" --password-stdin -- "$registry" 2>&1); then
  out=\${out//"$password"/[redacted]}
  why=$(printf '%s\\n' "$out" | grep -Ev '^[[:space:]]*$|^WARNING' | tail -n 3 | tr -s '\\n\\r\\t' '   ' | cut -c 1-${PULL_REASON_CHARS}) why=\${why% }
  fail "docker login to $registry as $user failed: \${why:-docker gave no reason}"
fi
password=
DOCKER_CONFIG=$config ${nested(pullImage(image))} "$1"`
  }
}

/** Prints the local image ID of a reference, or `image_id=` when it is not on the server. */
export function inspectImage(image: string): RemoteCommand {
  return {
    step: 'inspect',
    args: [image],
    script: `printf 'image_id=%s\\n' "$(docker image inspect --format '{{.Id}}' -- "$1" 2>/dev/null)"`
  }
}

/**
 * Keeps the running image for rollback: tags it so no prune removes it and the registry is not
 * needed to restore it, and records the reference it ran under. Notes the images this deploy moves
 * between (and the earlier rollback image) in `images`: the only ones a later prune may remove.
 */
export function recordRollback(path: string, rollbackTag: string, previous: { image: string; imageId: string }, targetImageId: string, owner: string): RemoteCommand {
  return {
    step: 'record',
    args: [stateDir(path), rollbackTag, previous.image, previous.imageId, targetImageId, owner],
    script:
      PRELUDE +
      `state=$1 tag=$2 ref=$3 id=$4 target=$5
docker tag -- "$id" "$tag" || fail "cannot tag the running image $id as $tag"
earlier=
rm -f -- "$state/rollback.before.owner"
if [ -f "$state/rollback" ]; then
  # (named by its run: only that run's restoreRollbackRecord puts it back)
  { cp -p -- "$state/rollback" "$state/rollback.before" && printf '%s\\n' "$6" > "$state/rollback.before.owner"; } || fail "cannot keep $state/rollback"
  earlier=$(sed -n 's/^image_id=//p' -- "$state/rollback")
fi
for i in $earlier "$id" "$target"; do
  [ -n "$i" ] && ! grep -qxF -- "$i" "$state/images" 2>/dev/null && { printf '%s\\n' "$i" >> "$state/images" || fail "cannot write $state/images"; }
done
printf 'image=%s\\nimage_id=%s\\ntag=%s\\n' "$ref" "$id" "$tag" > "$state/rollback.tmp" && mv -f -- "$state/rollback.tmp" "$state/rollback" || fail "cannot write $state/rollback"
echo recorded=yes`
  }
}

/**
 * Shell function: `kept_by FILE RUN` succeeds when FILE is there and the run RUN kept it (its token in
 * FILE.owner): a run puts back or removes only the copies it made itself.
 */
const KEPT_BY = `kept_by() { [ -f "$1" ] && [ "$(cat -- "$1.owner" 2>/dev/null)" = "$2" ]; }
`

/**
 * After a deploy that did not stick, the server runs the image it ran before, so the rollback target
 * is again the one recorded before that deploy: put the earlier record and its tag back.
 */
export function restoreRollbackRecord(path: string, owner: string): RemoteCommand {
  return {
    step: 'unrecord',
    args: [stateDir(path), owner],
    script:
      PRELUDE +
      KEPT_BY +
      `state=$1
kept_by "$state/rollback.before" "$2" || { echo restored=none; exit 0; }
mv -f -- "$state/rollback.before" "$state/rollback" || fail "cannot restore $state/rollback"
rm -f -- "$state/rollback.before.owner"
id=$(sed -n 's/^image_id=//p' -- "$state/rollback") tag=$(sed -n 's/^tag=//p' -- "$state/rollback")
if [ -n "$id" ] && [ -n "$tag" ]; then docker tag -- "$id" "$tag" 2>/dev/null || echo "warning=the recorded image $id is gone"; fi
echo restored=yes`
  }
}

/** Reads the rollback record written by the last deploy. */
export function readRollbackRecord(path: string): RemoteCommand {
  return {
    step: 'read-rollback',
    args: [stateDir(path)],
    script: PRELUDE + `[ -f "$1/rollback" ] || fail "no rollback record in $1 (no deploy by this action has run here)"\ncat -- "$1/rollback"`
  }
}

/**
 * Points a reference back at a recorded image ID, so compose starts it without the registry. A
 * digest reference (`repo@sha256:…`) cannot be tagged and always names the same image: it only has
 * to still be on the server.
 */
export function retagImage(imageId: string, image: string): RemoteCommand {
  return {
    step: 'retag',
    args: [imageId, image],
    script:
      PRELUDE +
      `case "$2" in
  *@*) [ "$(docker image inspect --format '{{.Id}}' -- "$2" 2>/dev/null)" = "$1" ] || fail "the recorded image $1 of $2 is no longer on the server" ;;
  *) docker tag -- "$1" "$2" || fail "cannot tag image $1 as $2 (was it removed?)" ;;
esac`
  }
}

/**
 * The shell lines that find the file `.env` stands for (a link into a secrets folder is followed:
 * the file it leads to is replaced in its own folder, so the rename stays atomic, and the link
 * stays) and check it can be replaced keeping owner and mode. Sets `env` and `tmp`.
 */
const ENV_TARGET = `cd -- "$1" || fail "cannot enter $1"
env=.env
if [ -L .env ]; then env=$(readlink -f -- .env) && [ -f "$env" ] || fail "the link .env in $1 does not lead to a file"; fi
dir=$(dirname -- "$env")
tmp=$dir/$(basename -- "$env").openclaw-deploy.tmp
[ -w "$dir" ] || fail "cannot replace $env: its folder $dir is not writable by $(id -un)"
rm -f -- "$tmp" "$tmp.2"
# copies keep owner and mode: the new file is written into one, which then replaces .env
cp -p -- "$env" "$tmp" || { rm -f -- "$tmp"; fail "cannot write .env in $1"; }
if [ "$(stat -c %u:%g -- "$tmp")" != "$(stat -c %u:%g -- "$env")" ]; then
  owner=$(stat -c %U:%G -- "$env")
  rm -f -- "$tmp"
  fail "cannot replace $env and keep its owner $owner: make $(id -un) its owner"
fi
`

/** Stands for a new gateway token made on the server (see setEnvVariables); it never leaves it. */
export const NEW_TOKEN = Symbol('a new random token, made on the server')
export type EnvValue = string | typeof NEW_TOKEN

/**
 * Sets variables in `.env` on the server: each one's value is replaced where its last assignment is,
 * or a `NAME=value` line is added; every other byte stays. The values travel on stdin, each with its
 * SHA-256, and the batch ends with `end`: a connection cut while they arrive cannot write half a
 * value. NEW_TOKEN makes the server write 32 random bytes as 64 hex digits (as upstream's setup makes
 * the gateway token) that no output shows.
 *
 * A value is written so that Compose reads back exactly its bytes: as it is when it has only
 * `A-Za-z0-9_@%+=:,./-` (and is not empty); else in single quotes (literal in Compose) when it has no `'`, no line
 * break and does not end in `\`; else in double quotes with `\`, `"`, `$`, LF and CR escaped. A
 * value already quoted keeps its kind of quotes when the new value can be written in them; else the
 * whole value part is rewritten (`export `, the name and any comment stay). A value that reads the
 * same already is left alone, so the step reports `written=` only the names it changed (or `none`).
 *
 * Before the new file replaces `.env`, each value is read back from it and the size checked. The
 * file as it was is kept in the state folder (`env.before`, mode 600, with `env.before.owner` naming
 * the run that wrote it) for restoreEnvFile. Errors name variables, never values.
 */
export function setEnvVariables(path: string, values: Record<string, EnvValue>, owner: string, options: { stopIfUnchanged?: boolean } = {}): RemoteCommand {
  const lines = Object.entries(values).map(([name, value]) => {
    if (!ENV_NAME.test(name)) throw new Error(`not a variable name: ${name}`)
    if (value === NEW_TOKEN) return `${name} ${NEW_TOKEN_WORD} -\n`
    if (value.includes('\0')) throw new Error(`the value of ${name} holds a NUL character, which .env cannot hold`)
    // an empty value is `-`: `read` would take an empty word for none
    return `${name} ${Buffer.from(value).toString('base64') || '-'} ${createHash('sha256').update(value).digest('hex')}\n`
  })
  return {
    step: 'write-env',
    args: [path, stateDir(path), owner, String(options.stopIfUnchanged ? EXIT_CODE.unchanged : 0)],
    stdin: `${lines.join('')}end\n`,
    script:
      PRELUDE +
      ENV_FUNCTIONS +
      `state=$2
# byte counts and offsets, whatever the server's locale
export LC_ALL=C
# written VALUE QUOTE: VALUE as written in .env unquoted (-) or in ' or " quotes; 1 if they cannot hold it.
# (Unquoted, an empty value would make a comment after it the value.)
plain='^[A-Za-z0-9_@%+=:,./-]+$'
written() {
  local v=$1
  case $2 in
    -) [[ $v =~ $plain ]] && printf '%s' "$v" ;;
    "'") case $v in *"'"* | *$'\\n'* | *$'\\r'* | *'\\') return 1 ;; esac; printf "'%s'" "$v" ;;
    *) v=\${v//"\\\\"/"\\\\\\\\"} v=\${v//'"'/'\\"'} v=\${v//'$'/'\\$'} v=\${v//$'\\n'/'\\n'} v=\${v//$'\\r'/'\\r'}; printf '"%s"' "$v" ;;
  esac
}
${ENV_TARGET}cp -p -- "$env" "$tmp.2" || { rm -f -- "$tmp"; fail "cannot write .env in $1"; }
trap 'rm -f -- "$tmp" "$tmp.2"' EXIT
cur=$env out=$tmp other=$tmp.2 ended= changed=
while read -r name b64 sum; do
  [ "$name" = end ] && { ended=yes; break; }
  if [ "$b64" = '${NEW_TOKEN_WORD}' ]; then
    value=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n')
    [[ $value =~ ^[0-9a-f]{64}$ ]] || fail "cannot make a new $name from /dev/urandom; .env is unchanged"
  else
    [ "$b64" != - ] || b64=
    value=$(printf '%s' "$b64" | base64 -d; printf x) && value=\${value%x}
    [ "$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)" = "$sum" ] || fail "the new value of $name did not arrive whole; .env is unchanged"
  fi
  at=$(env_find "$name" "$cur") || fail "cannot read .env in $1"
  [ "$at" != unterminated ] || fail "the quotes of $name in .env are never closed (Compose cannot read this .env either); .env is unchanged"
  size=$(wc -c < "$cur")
  if [ -n "$at" ]; then
    read -r s e q _ <<< "$at"
    old=$(tail -c +$((s + 1)) -- "$cur" | head -c $((e - s)); printf x) old=\${old%x}
    # the same value, written the same way, or with nothing in it Compose would read otherwise
    inner=$old
    if [ "$q" != - ]; then inner=\${old:1:\${#old}-2}; fi
    if [ "$old" = "$(written "$value" "$q")" ] || { [ "$inner" = "$value" ] && [[ $inner != *[\\\\$]* ]]; }; then continue; fi
    new=$(written "$value" "$q" || written "$value" - || written "$value" "'" || written "$value" '"')
    { head -c "$s" -- "$cur"; printf '%s' "$new"; tail -c +$((e + 1)) -- "$cur"; } > "$out" || fail "cannot write .env in $1"
    expected=$((size - (e - s) + \${#new}))
  else
    new=$(written "$value" - || written "$value" "'" || written "$value" '"')
    nl=
    if [ "$size" -gt 0 ] && [ -n "$(tail -c 1 -- "$cur")" ]; then nl=$'\\n'; fi
    { cat -- "$cur"; printf '%s%s=%s\\n' "$nl" "$name" "$new"; } > "$out" || fail "cannot write .env in $1"
    expected=$((size + \${#nl} + \${#name} + 1 + \${#new} + 1))
  fi
  back=$(at=$(env_find "$name" "$out") && read -r s e _ <<< "$at" && tail -c +$((s + 1)) -- "$out" | head -c $((e - s)); printf x)
  [ "$(wc -c < "$out")" -eq "$expected" ] && [ "$back" = "\${new}x" ] ||
    fail "writing $name into .env did not read back as written (disk full?); .env is unchanged"
  changed="$changed $name"
  if [ "$cur" = "$env" ]; then cur=$out out=$other; else t=$cur cur=$out out=$t; fi
done
[ -n "$ended" ] || fail "the new values did not arrive whole (connection cut?); .env is unchanged"
if [ -z "$changed" ]; then echo written=none; exit "$4"; fi
# the file as it was, for restoreEnvFile of this run (named by $3); readable only by its owner
(umask 077 && cp -- "$env" "$state/env.before.tmp" && printf '%s\\n' "$3" > "$state/env.before.owner") &&
  mv -f -- "$state/env.before.tmp" "$state/env.before" || fail "cannot keep a copy of .env in $state"
mv -f -- "$cur" "$env" || fail "cannot replace .env in $1"
printf 'written=%s\\n' "\${changed# }"`
  }
}

/** A variable name as tenant-env and the image variable may use (see settings.ts: ENV_NAME_RULE). */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
/** The word in place of a value's base64 that asks for NEW_TOKEN (no base64 has a `!`). */
const NEW_TOKEN_WORD = '!new-token'

/**
 * Puts back the `.env` that setEnvVariables of the run `owner` replaced (its copy `env.before` in the
 * state folder, removed once put back), atomically, keeping the current owner and mode; a link stays a link. When that run
 * wrote nothing (e.g. its connection broke before the write), `.env` stays as it is: `restored=none`.
 */
export function restoreEnvFile(path: string, owner: string): RemoteCommand {
  return {
    step: 'restore-env',
    args: [path, stateDir(path), owner],
    script:
      PRELUDE +
      KEPT_BY +
      `state=$2
kept_by "$state/env.before" "$3" || { echo restored=none; exit 0; }
${ENV_TARGET}trap 'rm -f -- "$tmp"' EXIT
cat -- "$state/env.before" > "$tmp" && [ "$(wc -c < "$tmp")" -eq "$(wc -c < "$state/env.before")" ] || fail "cannot write .env in $1"
mv -f -- "$tmp" "$env" || fail "cannot replace .env in $1"
rm -f -- "$state/env.before" "$state/env.before.owner"
echo restored=yes`
  }
}

/**
 * Removes the copy of `.env` (`env.before`) that setEnvVariables of the run `owner` kept, once that
 * run's deploy is healthy: no rollback needs it any more, and it holds the values the run replaced
 * (a gateway token before its rotation, say), which should not outlive their use. A copy another run
 * wrote is left: `forgotten=none`.
 */
export function forgetEnvCopy(path: string, owner: string): RemoteCommand {
  return {
    step: 'forget-env',
    args: [stateDir(path), owner],
    script:
      PRELUDE +
      KEPT_BY +
      `state=$1
kept_by "$state/env.before" "$2" || { echo forgotten=none; exit 0; }
rm -f -- "$state/env.before" "$state/env.before.owner" || fail "cannot remove $state/env.before"
echo forgotten=yes`
  }
}

/**
 * `docker compose up -d` for the given services (all when none is given): recreates only those whose
 * configuration changed.
 */
export function composeUp(path: string, services: string[], imageVariable: string): RemoteCommand {
  return composeVerb('up', 'up -d --no-build', 'exit 0', 'fail "docker compose up failed: $why"', path, services, imageVariable)
}

/**
 * `docker compose stop` for the given services: after a deploy with no earlier image to go back to
 * (nothing ran before it) did not become healthy, what it started is stopped, so no container is left
 * restarting. The containers and their logs stay; a restart policy (`unless-stopped`) does not start a
 * stopped container again.
 */
export function composeStop(path: string, services: string[], imageVariable: string): RemoteCommand {
  return composeVerb('stop', 'stop', '{ echo stopped=yes; exit 0; }', 'fail "docker compose stop failed: $why"', path, services, imageVariable)
}

/**
 * `docker compose <verb> -- SERVICE...` in the project folder, `done` run when it succeeds, else
 * `failed` with `$why` (each message written out whole, so the troubleshooting guide's headings are
 * found in the source). Compose's output goes through redact (an error can quote `.env`), its last
 * 40 lines only.
 */
function composeVerb(step: string, verb: string, done: string, failed: string, path: string, services: string[], imageVariable: string): RemoteCommand {
  return {
    step,
    args: [path, imageVariable, ...services],
    script:
      PRELUDE +
      ENV_FUNCTIONS +
      `cd -- "$1" || fail "cannot enter $1"
image_variable=$2
shift 2
out=$(docker compose ${verb} -- "$@" 2>&1) && ${done}
printf '%s\\n' "$out" | tail -n 40 | redact .env
why=$(said "$out" 1)
${failed}`
  }
}

/**
 * Waits until the gateway answers its health URL with HTTP 2xx and the containers of the given
 * services (all when none is given) are healthy by HEALTH_RULE, for up to `timeoutSeconds`. Pauses
 * grow from 1 s to 5 s.
 * After a restart (`confirm`), success needs two good probes in a row with no restart in between, so
 * a container that crashes right after answering once is not taken for healthy; a read-only status
 * check takes the first good probe.
 */
export function healthCheck(path: string, url: string, timeoutSeconds: number, services: string[], confirm = true): RemoteCommand {
  return {
    step: 'health',
    args: [path, url, String(timeoutSeconds), confirm ? 'confirm' : 'once', ...services],
    script:
      PRELUDE +
      `cd -- "$1" || fail "cannot enter $1"
url=$2 limit=$3 confirm=$4
shift 4
${PROBE}containers() {
  ids=$(docker compose ps -a -q -- "$@" 2>/dev/null)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker inspect --format '${CONTAINER_FORMAT}' -- $ids 2>/dev/null
}
${HEALTH_RULE}deadline=$((SECONDS + limit)) pause=1 good=
while :; do
  probe
  ok=
  if state=$(containers "$@" | judge); then case $code in 2??) ok=yes ;; esac; fi
  if [ -n "$ok" ] && { [ "$confirm" = once ] || [ "$good" = "$state" ]; }; then
    printf 'health=ok\\nhttp=%s\\ncontainers=%s\\n' "$code" "$state"; exit 0
  fi
  if [ -n "$ok" ]; then good=$state; else good=; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    printf 'health=failed\\nhttp=%s\\ncontainers=%s\\n' "$code" "$state"
    echo "error=not healthy within \${limit}s: $url answered HTTP $code"
    exit ${EXIT_CODE.unhealthy}
  fi
  sleep "$pause"
  [ "$pause" -ge 5 ] || pause=$((pause + 1))
done`
  }
}

/**
 * Removes the images this deployment brought to the server (listed in `images` by the record step)
 * that it no longer needs: never the current or rollback image, never one a container uses (running
 * or stopped, of any project), never another project's image or a host-wide prune. `docker rmi` by
 * ID without -f also refuses an image that carries a tag of another repository. An image Docker
 * keeps stays listed, to be tried again; one that is gone is forgotten. `legacyTag`, the rollback tag
 * of earlier versions, is dropped from an image being removed (the new tag replaced it).
 */
export function pruneImages(path: string, legacyTag: string, keepImageIds: string[]): RemoteCommand {
  return {
    step: 'prune',
    args: [stateDir(path), legacyTag, ...keepImageIds],
    script: `set -u
state=$1 legacy=$2
shift 2
[ -f "$state/images" ] || { echo removed=0; exit 0; }
keep=" $* $(sed -n 's/^image_id=//p' -- "$state/rollback" 2>/dev/null) "
# the images of every container on this server, running or stopped, whatever its project
containers=$(docker ps -aq --no-trunc) || { echo "error=cannot list the server's containers; no image removed"; exit ${EXIT_CODE.failed}; }
used=" $(printf '%s\\n' "$containers" | xargs -r docker inspect --format '{{.Image}}' -- 2>/dev/null | tr '\\n' ' ') "
removed=0 left=" "
while read -r id; do
  case "$id" in sha256:*) ;; *) continue ;; esac
  case "$left" in *" $id "*) continue ;; esac
  case "$keep$used" in *" $id "*) left="$left$id "; continue ;; esac
  docker image inspect -- "$id" >/dev/null 2>&1 || continue
  if [ -n "$legacy" ] && [ "$(docker image inspect --format '{{.Id}}' -- "$legacy" 2>/dev/null)" = "$id" ]; then docker rmi -- "$legacy" >/dev/null 2>&1; fi
  if docker image inspect -- "$id" >/dev/null 2>&1 && ! docker rmi -- "$id" >/dev/null 2>&1; then left="$left$id "; else removed=$((removed + 1)); fi
done < "$state/images"
# shellcheck disable=SC2086
printf '%s\\n' $left > "$state/images.tmp" && mv -f -- "$state/images.tmp" "$state/images"
echo removed=$removed`
  }
}

/** Appends one line to the server's deploy history (kept to its last 1000 lines). */
export function appendHistory(path: string, line: string): RemoteCommand {
  return {
    step: 'history',
    args: [stateDir(path), line],
    script: `set -u
f=$1/history.log
# (the last channel may be sent twice after a lost connection: a line that is there already is not added again)
if [ "$(tail -n 1 -- "$f" 2>/dev/null)" = "$2" ]; then echo appended=already; exit 0; fi
printf '%s\\n' "$2" >> "$f"
if [ "$(wc -l < "$f")" -gt 2000 ]; then tail -n 1000 -- "$f" > "$f.tmp" && mv -f -- "$f.tmp" "$f"; fi
echo appended=yes`
  }
}

/**
 * `mode: status` in one round trip and the least work that answers it: the project's containers
 * (one Compose query and one `docker inspect`, CONTAINER_FORMAT as `container=` lines), the image
 * variable's value, the last history line and the lock holder, then one health probe judged with
 * the containers already read (HEALTH_RULE; the given services', else the whole project's). Exits
 * like healthCheck: 0 healthy, EXIT_CODE.unhealthy not; EXIT_CODE.failed when the project cannot be read.
 */
export function statusProbe(path: string, imageVariable: string, url: string, services: string[]): RemoteCommand {
  return {
    step: 'status',
    args: [path, stateDir(path), url, imageVariable, ...services],
    script:
      PRELUDE +
      ENV_FUNCTIONS +
      `state=$2 url=$3 image_variable=$4
${LOCK_FUNCTIONS}${PROBE}${HEALTH_RULE}cd -- "$1" 2>/dev/null || fail "deployment folder $1 does not exist or $(id -un) cannot enter it"
shift 4
${FIND_COMPOSE}printf 'compose=%s\\n' "$compose"
if [ -r .env ] && at=$(env_find "$image_variable" .env) && [ -n "$at" ]; then
  case $at in *multiline | unterminated) ;; *) printf 'image_var=%s\\n' "$(env_value "$image_variable" .env | tr -d '\\n\\r')" ;; esac
fi
ids=$(docker compose ps -a -q -- "$@" 2>&1) || fail "docker compose cannot list the containers in $1: $(said "$ids" 3)"
lines=
# shellcheck disable=SC2086
if [ -n "$ids" ]; then lines=$(docker inspect --format '${CONTAINER_FORMAT}' -- $ids 2>/dev/null); fi
[ -z "$lines" ] || printf '%s\\n' "$lines" | sed 's/^/container=/'
printf 'last=%s\\n' "$(tail -n 1 -- "$state/history.log" 2>/dev/null)"
printf 'holder=%s\\n' "$(shown "$(holder_text)")"
probe
ok=
if containers=$(printf '%s\\n' "$lines" | judge); then case $code in 2??) ok=yes ;; esac; fi
if [ -n "$ok" ]; then health=ok; else health=failed; fi
printf 'health=%s\\nhttp=%s\\ncontainers=%s\\n' "$health" "$code" "$containers"
[ -n "$ok" ] && exit 0
echo "error=not healthy: $url answered HTTP $code"
exit ${EXIT_CODE.unhealthy}`
  }
}
