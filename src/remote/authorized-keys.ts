/**
 * What `mode: rotate-key` runs on a server: reading and changing the login user's
 * `~/.ssh/authorized_keys` (the file setup-server.sh writes). Constant bash scripts, as in
 * commands.ts: the keys (public, checked in-process to be a key type word and base64) and our
 * comment travel as arguments, never in the script text; facts come back as `key=value` lines.
 *
 * A line is read as sshd(8) reads it (AUTHORIZED_KEYS FILE FORMAT): blank lines and `#` comments are
 * no keys; a line is `[options] keytype base64 [comment]`, where the options end at the first space
 * or tab outside double quotes (`\"` is a quote inside them), so `from="10.0.0.1",command="a b,c"`
 * is one options field. A trailing CR (a file edited on Windows) is not part of the key.
 *
 * Every change is made under `flock` on `~/.ssh/.openclaw-deploy-keys.lock` (so two runs that log in
 * as the same user on one host take turns), into a copy of the file in its own folder (keeping its
 * owner and mode), which is read back and then renamed over it: the file is replaced atomically or
 * not at all. Every line the change is not about stays byte for byte, line endings and a missing
 * final newline included. A symbolic link in place of the file is refused, not followed.
 */
import type { PublicKey } from './deploy-keys.js'
import { KEY_BLOB, KEY_TYPE_WORD } from './deploy-keys.js'
import { PRELUDE, type RemoteCommand } from './commands.js'

/** The comment of a line this action adds starts with this; on failure only such lines are taken back. */
export const ROTATED_MARK = 'openclaw-deploy rotated'

/** The comment of the line added now: `openclaw-deploy rotated 2026-03-01T04:20:00Z`. */
export function rotatedComment(at = new Date()): string {
  return `${ROTATED_MARK} ${at.toISOString().replace(/\.\d{3}Z$/, 'Z')}`
}

/**
 * The awk program every step shares. Keys a (a_type, a_blob; with `mark` set, only lines whose
 * comment starts with it) and b (b_type, b_blob) come from the environment (ENVIRON: no escape
 * processing, unlike -v). Modes:
 *   count   prints `A B`: how many lines hold key a, and key b;
 *   add     writes the file to `out` with, after each line holding key a, a line for key b with the
 *           same options and the comment `comment` (each distinct line once), and prints the number
 *           of lines added and of bytes written;
 *   remove  writes the file to `out` without the lines holding key a, and prints the number of
 *           lines removed and of bytes written.
 * Arguments: MODE FILE LASTNL OUT; LASTNL (`yes`/`no`) says whether FILE ends with a newline (awk
 * cannot tell), so the output ends as it did.
 */
const SCAN = String.raw`scan() {
  LC_ALL=C mode=$1 lastnl=$3 out=$4 awk '
    BEGIN { mode = ENVIRON["mode"]; out = ENVIRON["out"]; lastnl = ENVIRON["lastnl"] }
    # holds(s, t, b): 1 when line s holds key t b without options, 2 with options (then in opts), else 0
    function holds(s, t, b,   i, n, c, q, rest) {
      cmt = ""; opts = ""
      sub(/^[ \t]+/, "", s)
      if (s == "" || substr(s, 1, 1) == "#") return 0
      if (typed(s, t, b)) return 1
      n = length(s); q = 0
      for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (!q && (c == " " || c == "\t")) break
        if (c == "\\" && substr(s, i + 1, 1) == "\"") { i++; continue }
        if (c == "\"") q = !q
      }
      if (q || i > n) return 0
      rest = substr(s, i); sub(/^[ \t]+/, "", rest)
      if (!typed(rest, t, b)) return 0
      opts = substr(s, 1, i - 1)
      return 2
    }
    # typed(s, t, b): s starts with the words t and b (the rest, less blanks, goes to cmt)
    function typed(s, t, b,   w) {
      if (!match(s, /^[^ \t]+/) || substr(s, 1, RLENGTH) != t) return 0
      s = substr(s, RLENGTH + 1)
      if (!match(s, /^[ \t]+[^ \t]+/)) return 0
      w = substr(s, 1, RLENGTH); sub(/^[ \t]+/, "", w)
      if (w != b) return 0
      cmt = substr(s, RLENGTH + 1); sub(/^[ \t]+/, "", cmt)
      return 1
    }
    function isa(s,   m) {
      m = holds(s, ENVIRON["a_type"], ENVIRON["a_blob"])
      if (m && ENVIRON["mark"] != "" && index(cmt, ENVIRON["mark"]) != 1) return 0
      return m
    }
    function emit(s) {
      if (printed++) { printf "\n" > out; bytes++ }
      printf "%s", s > out; bytes += length(s)
    }
    {
      line = $0; cr = ""
      if (sub(/\r$/, "", line)) cr = "\r"
      m = isa(line); o = opts
      if (m) na++
      if (holds(line, ENVIRON["b_type"], ENVIRON["b_blob"])) nb++
      if (mode == "count" || (mode == "remove" && m)) next
      emit($0)
      if (mode == "add" && m) {
        new = (m == 2 ? o " " : "") ENVIRON["b_type"] " " ENVIRON["b_blob"] " " ENVIRON["comment"] cr
        if (!(new in made)) { made[new] = 1; emit(new); added++ }
      }
    }
    END {
      if (printed && lastnl == "yes") { printf "\n" > out; bytes++ }
      if (mode == "count") print na + 0, nb + 0
      else print (mode == "add" ? added : na) + 0, bytes + 0
    }' "$2"
}
`

/**
 * Shell functions of every step: `locate` finds the file (sets keys, dir; fails on a link), `lock`
 * takes the editors' flock, `ends` says whether a file ends with a newline, `replace FILE COUNTS`
 * writes a new version through SCAN (see there) into a copy and renames it over the file.
 */
const KEYS_FUNCTIONS =
  SCAN +
  `export LC_ALL=C
me=$(id -un)
locate() {
  [ -n "\${HOME:-}" ] || fail "HOME is not set for $me, so its authorized_keys cannot be found; nothing was changed"
  dir=$HOME/.ssh keys=$HOME/.ssh/authorized_keys
  [ ! -L "$keys" ] || fail "$keys of $me is a symbolic link; the action does not follow it: change the file it leads to by hand. Nothing was changed"
}
lock() {
  command -v flock >/dev/null || fail "flock (util-linux) is not installed on the server; changing authorized_keys needs it. Nothing was changed"
  { exec 9>>"$dir/.openclaw-deploy-keys.lock"; } 2>/dev/null || fail "cannot open the lock file $dir/.openclaw-deploy-keys.lock as $me; nothing was changed"
  flock -w 10 9 || fail "another process kept $dir/.openclaw-deploy-keys.lock busy for 10 s; nothing was changed"
}
ends() { if [ -s "$1" ] && [ -z "$(tail -c 1 -- "$1")" ]; then echo yes; else echo no; fi; }
# replace MODE: the new version of $keys (SCAN MODE, keys a and b from the environment) into a copy
# that keeps owner and mode, read back, then renamed over $keys; sets n (lines added or removed)
replace() {
  tmp=$dir/.authorized_keys.openclaw-deploy.tmp
  rm -f -- "$tmp"
  trap 'rm -f -- "$tmp"' EXIT
  [ -w "$dir" ] || fail "cannot replace $keys: its folder $dir is not writable by $me; nothing was changed"
  cp -p -- "$keys" "$tmp" 2>/dev/null || fail "cannot make a copy of $keys in $dir (disk full?); nothing was changed"
  if [ "$(stat -c %u:%g -- "$tmp")" != "$(stat -c %u:%g -- "$keys")" ]; then
    fail "cannot replace $keys and keep its owner $(stat -c %U:%G -- "$keys"): make $me its owner. Nothing was changed"
  fi
  before=$(scan count "$keys" no /dev/null)
  read -r n size <<< "$(scan "$1" "$keys" "$(ends "$keys")" "$tmp")" || fail "cannot write the new $keys (disk full?); nothing was changed"
  [ "$(wc -c < "$tmp")" -eq "$size" ] || fail "the new $keys did not read back at its size (disk full?); nothing was changed"
  read -r a b <<< "$before"
  read -r a2 b2 <<< "$(scan count "$tmp" no /dev/null)"
  case $1 in
    add) [ "$a2" -eq "$a" ] && [ "$b2" -eq "$n" ] ;;
    remove) [ "$a2" -eq 0 ] && [ "$b2" -eq "$b" ] ;;
  esac || fail "the new $keys did not read back as written; nothing was changed"
  mv -f -- "$tmp" "$keys" || fail "cannot replace $keys in $dir; nothing was changed"
  trap - EXIT
}
`

function keyArgs(a: PublicKey, b: PublicKey): string[] {
  for (const key of [a, b]) {
    // (publicKeyOf made them; this keeps any other caller from passing a word the awk would misread)
    if (!KEY_TYPE_WORD.test(key.type) || !KEY_BLOB.test(key.blob)) throw new Error(`not a public key: ${key.type}`)
  }
  return [a.type, a.blob, b.type, b.blob]
}

/**
 * Through the current key's connection: adds the new key with the options of each line of the
 * current key (one line per distinct options), after that line, commented ROTATED_MARK and the
 * date, so sshd lets it in exactly where it lets the current key in. Nothing is added when the new
 * key has a line already. Facts: `old_lines=`, `new_lines=` (before), `added=`. A file without the
 * current key (missing, or sshd reads keys from elsewhere) fails with nothing changed, and lists
 * what sshd_config says about where keys are read on `sshd_keys=` lines.
 */
export function addKey(current: PublicKey, next: PublicKey, comment: string): RemoteCommand {
  if (/[\r\n]/.test(comment)) throw new Error('a comment is one line')
  return {
    step: 'keys-add',
    args: [...keyArgs(current, next), comment],
    script:
      PRELUDE +
      KEYS_FUNCTIONS +
      `export a_type=$1 a_blob=$2 b_type=$3 b_blob=$4 comment=$5 mark=''
locate
elsewhere() {
  grep -hiE '^[[:space:]]*(AuthorizedKeysFile|AuthorizedKeysCommand)[[:space:]]' /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*.conf 2>/dev/null | head -n 5 | sed 's/^[[:space:]]*/sshd_keys=/'
}
if [ ! -e "$keys" ]; then
  elsewhere
  fail "$keys does not exist, yet the current key logged in as $me: this server's sshd reads keys from elsewhere (AuthorizedKeysFile or AuthorizedKeysCommand in sshd_config); rotate the key there by hand. Nothing was changed"
fi
[ -f "$keys" ] || fail "$keys is not a regular file; nothing was changed"
lock
read -r a b <<< "$(scan count "$keys" no /dev/null)" || fail "cannot read $keys as $me; nothing was changed"
printf 'old_lines=%s\\nnew_lines=%s\\n' "$a" "$b"
if [ "$a" -eq 0 ]; then
  elsewhere
  fail "$keys holds no line for the current key, yet it logged in as $me: this server's sshd reads keys from elsewhere (AuthorizedKeysFile or AuthorizedKeysCommand in sshd_config); rotate the key there by hand. Nothing was changed"
fi
if [ "$b" -gt 0 ]; then echo added=0; exit 0; fi
replace add
echo "added=$n"`
  }
}

/**
 * Removes the lines of key `drop` (with `mark`, only those whose comment starts with it), but only
 * while key `keep` keeps a line, and checks it still does afterwards. The last step of a rotation
 * (drop the old key, keep the new, through the new key's connection), and its undo when the new key
 * could not log in (drop the lines this action added, keep the old key). Facts: `removed=`.
 */
export function removeKey(drop: PublicKey, keep: PublicKey, mark = ''): RemoteCommand {
  if (/[\r\n]/.test(mark)) throw new Error('a mark is one line')
  return {
    step: mark ? 'keys-undo' : 'keys-remove',
    args: [...keyArgs(drop, keep), mark],
    script:
      PRELUDE +
      KEYS_FUNCTIONS +
      `export a_type=$1 a_blob=$2 b_type=$3 b_blob=$4 mark=$5 comment=''
locate
[ -f "$keys" ] || fail "$keys does not exist (any more) or is not a regular file; nothing was changed"
lock
read -r a b <<< "$(scan count "$keys" no /dev/null)" || fail "cannot read $keys as $me; nothing was changed"
[ "$b" -gt 0 ] || fail "$keys holds no line for the key that must stay, so no line was removed (another process changed the file?)"
if [ "$a" -eq 0 ]; then echo removed=0; exit 0; fi
replace remove
echo "removed=$n"`
  }
}

/**
 * Read-only: how many lines of `~/.ssh/authorized_keys` hold the current and the new key (0 0 when
 * there is no such file). Facts: `file=`, `old_lines=`, `new_lines=`.
 */
export function countKeys(current: PublicKey, next: PublicKey): RemoteCommand {
  return {
    step: 'keys-check',
    args: keyArgs(current, next),
    script:
      PRELUDE +
      KEYS_FUNCTIONS +
      `export a_type=$1 a_blob=$2 b_type=$3 b_blob=$4 mark='' comment=''
locate
printf 'file=%s\\n' "$keys"
if [ ! -e "$keys" ]; then printf 'old_lines=0\\nnew_lines=0\\n'; exit 0; fi
read -r a b <<< "$(scan count "$keys" no /dev/null)" || fail "cannot read $keys as $me"
printf 'old_lines=%s\\nnew_lines=%s\\n' "$a" "$b"`
  }
}

/** The proof that a connection works: who it logged in as (`user=`). */
export function whoAmI(): RemoteCommand {
  return { step: 'keys-login', args: [], script: `printf 'user=%s\\n' "$(id -un)"` }
}
