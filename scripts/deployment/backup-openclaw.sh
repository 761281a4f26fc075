#!/usr/bin/env bash
# Backups of one OpenClaw gateway's configuration, made and restored on the server itself.
#
#   backup-openclaw.sh [backup] [--dir DIR] [--keep-days N] [--lock-wait S] [PROJECT]
#       Archive the project's .env, compose files, config/ and workspace/ into
#       DIR/<project>-<UTC time>.tar.gz, then remove this project's archives older than N days.
#   backup-openclaw.sh list [--dir DIR] [PROJECT]
#       The project's archives, newest first.
#   backup-openclaw.sh restore [--dir DIR] [--lock-wait S] ARCHIVE [PROJECT]
#       Put those files back exactly as archived (bytes and modes). The current state is archived
#       first. Containers are not touched: apply the restored files with
#       `docker compose up -d --force-recreate` in the project folder.
#
# PROJECT   the deployment folder (default $OPENCLAW_PROJECT, else ~/openclaw-prd)
# --dir     where the archives are (default ~/backups/<name of PROJECT>)
# --keep-days N   retention in days (default 7); the archive just made is always kept
# --lock-wait S   how long to wait for a deploy that holds the project's lock (default 600 s)
#
# Backup and restore hold the deploy action's lock of the project meanwhile, so no deploy changes
# .env while it is archived or replaced (a deploy that comes then waits, or reports `locked`).
# If this script is killed before it can release the lock (SIGKILL, a crash), the lock expires
# within 2 minutes and the next deploy takes it over.
#
# setup-server.sh installs this script as /usr/local/bin/backup-openclaw.sh and runs it daily from
# /etc/cron.d as the deploy user. Exit status: 0 done, 1 failed (the reason is printed), 2 bad usage.
set -euo pipefail

# What a backup holds, relative to the project folder. Images are not backed up: they are in the
# image registry, and the action keeps the previous one on the server for rollback.
FILES=(.env compose.yaml compose.yml docker-compose.yaml docker-compose.yml
  compose.override.yaml compose.override.yml docker-compose.override.yaml docker-compose.override.yml)
FOLDERS=(config workspace)
KEEP_DAYS_DEFAULT=7
LOCK_WAIT_DEFAULT=600
# The lock's lease: renewed every LOCK_RENEW_EVERY seconds while this script runs, so a killed run
# leaves a lock that expires within LOCK_LEASE seconds. (Tests shorten both.)
LOCK_LEASE=${OPENCLAW_BACKUP_LOCK_LEASE:-120}
LOCK_RENEW_EVERY=${OPENCLAW_BACKUP_LOCK_RENEW:-30}

PROG=${0##*/}
fail() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n' "$PROG" "$*" >&2; printf "Run '%s --help' for usage.\n" "$PROG" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0; }
say() { printf '%s\n' "$*"; }

# the value of a key=value line of the lock functions' output, without control characters
fact() { sed -n "s/^$1=//p" <<<"$2" | head -n 1 | tr -d '[:cntrl:]'; }
# who holds the lock, by the output of deploy_lock_take
holder_in() {
  local holder
  holder=$(fact holder "$1")
  printf '%s\n' "${holder:-unknown}"
}

human_size() { # bytes -> e.g. 12.3 KiB
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ }
    printf(i == 1 ? "%d %s" : "%.1f %s", b, u[i]) }'
}

# ---------------------------------------------------------------------------------------------
# arguments

command=backup
dir=''
keep_days=$KEEP_DAYS_DEFAULT
lock_wait=$LOCK_WAIT_DEFAULT
positional=()
staging='' # restore's unpacking folder, removed on exit

parse_args() {
  if (($#)) && [[ $1 == backup || $1 == list || $1 == restore ]]; then command=$1; shift; fi
  while (($#)); do
    case $1 in
      -h | --help) usage ;;
      --dir) (($# >= 2)) || usage_error "--dir needs a folder"; dir=$2; shift 2 ;;
      --dir=*) dir=${1#--dir=}; shift ;;
      --keep-days) (($# >= 2)) || usage_error "--keep-days needs a number"; keep_days=$2; shift 2 ;;
      --keep-days=*) keep_days=${1#--keep-days=}; shift ;;
      --lock-wait) (($# >= 2)) || usage_error "--lock-wait needs a number of seconds"; lock_wait=$2; shift 2 ;;
      --lock-wait=*) lock_wait=${1#--lock-wait=}; shift ;;
      --) shift; positional+=("$@"); break ;;
      -*) usage_error "unknown option: $1" ;;
      *) positional+=("$1"); shift ;;
    esac
  done
  if ! [[ $keep_days =~ ^[0-9]+$ ]] || ((keep_days < 1 || keep_days > 3650)); then
    usage_error "--keep-days must be a whole number of days from 1 to 3650, not '$keep_days'"
  fi
  if ! [[ $lock_wait =~ ^[0-9]{1,5}$ ]] || ((10#$lock_wait > 86400)); then
    usage_error "--lock-wait must be a whole number of seconds from 0 to 86400, not '$lock_wait'"
  fi
  lock_wait=$((10#$lock_wait))
  if ! [[ $LOCK_LEASE =~ ^[1-9][0-9]{0,5}$ && $LOCK_RENEW_EVERY =~ ^[1-9][0-9]{0,5}$ ]] || ((LOCK_RENEW_EVERY >= LOCK_LEASE)); then
    usage_error "OPENCLAW_BACKUP_LOCK_RENEW ($LOCK_RENEW_EVERY) and OPENCLAW_BACKUP_LOCK_LEASE ($LOCK_LEASE) must be seconds, the first less than the second"
  fi
  local want=1
  [[ $command == restore ]] && want=2
  if ((${#positional[@]} > want)); then usage_error "too many arguments: ${positional[*]}"; fi
  if [[ $command == restore ]]; then
    ((${#positional[@]} >= 1)) || usage_error "restore needs the archive to restore (see '$PROG list')"
    archive=${positional[0]}
    project=${positional[1]:-}
  else
    project=${positional[0]:-}
  fi
  project=${project:-${OPENCLAW_PROJECT:-$HOME/openclaw-prd}}
  project=${project%/}
  [[ $project == /* ]] || project=$PWD/$project
  name=${project##*/}
  [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || fail "the project folder's name '$name' has characters a backup name cannot hold"
  dir=${dir:-$HOME/backups/$name}
  dir=${dir%/}
}

# ---------------------------------------------------------------------------------------------
# the deploy lock

# BEGIN generated by scripts/dev/gen-backup-lock.mjs from src/remote/commands.ts (do not edit)
# The deploy action's lock: each function runs the script the action runs for that change to the
# lock. They print key=value lines (error=… when they fail) and exit 0, DEPLOY_LOCK_HELD (another
# holder kept it for WAIT seconds: holder=, expires_in=), DEPLOY_LOCK_LOST (TOKEN no longer holds it:
# lock_lost=) or 3 (error=).
readonly DEPLOY_LOCK_HELD=4 DEPLOY_LOCK_LOST=6
# deploy_lock_take PROJECT HOLDER WAIT LEASE
# shellcheck disable=SC2016 # the script's $1… are its own arguments
deploy_lock_take() { bash -c 'set -u
fail() { printf '\''error=%s\n'\'' "$*"; exit 3; }
state=$2 holder=${3//[$'\''\n\r'\'']/ } wait=$4 lease=$5
# A mistyped path must not be created (the deploy would then fail later with "no docker-compose.yml").
[ -d "$1" ] || fail "deployment folder $1 does not exist on $(hostname): set the server'\''s path in the registry to the folder that holds docker-compose.yml and .env"
# Two runs may create it at once: the one that loses the race finds it made.
mkdir -- "$state" 2>/dev/null || [ -d "$state" ] || fail "cannot create $state as $(id -un)"
note=$state/lock/holder
need_flock() { command -v flock >/dev/null || fail "flock (util-linux) is not installed on the server; the deploy lock needs it"; }
guard() {
  need_flock
  { exec 9>>"$state/lock.guard"; } 2>/dev/null || fail "cannot open the lock guard $state/lock.guard as $(id -un)"
  flock -w 10 9 || fail "another process kept the lock guard $state/lock.guard busy for 10 s"
}
unguard() { exec 9>&-; }
write_note() {
  printf '\''%s\nexpires=%s\n'\'' "$1" "$(($(date +%s) + lease))" > "$note.tmp" && mv -f -- "$note.tmp" "$note"
}
holder_text() { head -n 1 -- "$note" 2>/dev/null; }
# a holder as others see it: without its token (only the holder'\''s own steps need it) and bounded
shown() { printf '\''%s'\'' "$1" | sed '\''s/ token=[^ ]*//g'\'' | head -c 400; }
expiry() { sed -n '\''s/^expires=\([0-9][0-9]*\)$/\1/p'\'' -- "$note" 2>/dev/null | tail -n 1; }
deadline=$((SECONDS + wait))
while :; do
  guard
  if out=$(LC_ALL=C mkdir -- "$state/lock" 2>&1); then
    write_note "$holder" || { rm -rf -- "$state/lock"; fail "cannot write the lock note $note as $(id -un)"; }
    echo locked=yes
    exit 0
  fi
  case $out in *"File exists"*) ;; *) fail "cannot create the lock $state/lock: ${out#mkdir: }" ;; esac
  now=$(date +%s) expires=$(expiry) old=$(shown "$(holder_text)")
  if [ -n "$expires" ] && [ "$expires" -le "$now" ]; then
    write_note "$holder" || fail "cannot write the lock note $note as $(id -un)"
    printf '\''took_over=%s\nexpired_for=%s\n'\'' "$old" "$((now - expires))"
    echo locked=yes
    exit 0
  fi
  if [ -d "$state/lock" ] && [ ! -e "$note" ] && [ $((now - $(stat -c %Y -- "$state/lock" 2>/dev/null || echo "$now"))) -ge 60 ]; then
    write_note "$holder" || fail "cannot write the lock note $note as $(id -un)"
    printf '\''took_over=%s\n'\'' "a run that died while taking the lock (no holder note for over 60s)"
    echo locked=yes
    exit 0
  fi
  unguard
  if [ "$SECONDS" -ge "$deadline" ]; then
    printf '\''holder=%s\nexpires_in=%s\n'\'' "$old" "${expires:+$((expires - now))}"
    exit 4
  fi
  sleep 1
done' openclaw-lock "$1" "$1"/.openclaw-deploy "$2" "$3" "$4"; }
# deploy_lock_renew PROJECT TOKEN LEASE
# shellcheck disable=SC2016 # the script's $1… are its own arguments
deploy_lock_renew() { bash -c 'set -u
fail() { printf '\''error=%s\n'\'' "$*"; exit 3; }
state=$1 token=$2 lease=$3
note=$state/lock/holder
need_flock() { command -v flock >/dev/null || fail "flock (util-linux) is not installed on the server; the deploy lock needs it"; }
guard() {
  need_flock
  { exec 9>>"$state/lock.guard"; } 2>/dev/null || fail "cannot open the lock guard $state/lock.guard as $(id -un)"
  flock -w 10 9 || fail "another process kept the lock guard $state/lock.guard busy for 10 s"
}
unguard() { exec 9>&-; }
write_note() {
  printf '\''%s\nexpires=%s\n'\'' "$1" "$(($(date +%s) + lease))" > "$note.tmp" && mv -f -- "$note.tmp" "$note"
}
holder_text() { head -n 1 -- "$note" 2>/dev/null; }
# a holder as others see it: without its token (only the holder'\''s own steps need it) and bounded
shown() { printf '\''%s'\'' "$1" | sed '\''s/ token=[^ ]*//g'\'' | head -c 400; }
expiry() { sed -n '\''s/^expires=\([0-9][0-9]*\)$/\1/p'\'' -- "$note" 2>/dev/null | tail -n 1; }
guard
if [ -z "$token" ] || ! grep -qF -- "token=$token" "$note" 2>/dev/null; then
  printf '\''lock_lost=%s\n'\'' "$(shown "$(holder_text)")"
  echo "error=this run no longer holds the deploy lock $state/lock (its lease expired and another run took it over, or it was removed)"
  exit 6
fi
write_note "$(holder_text)" || fail "cannot renew the lock note $note as $(id -un)"' openclaw-lease "$1"/.openclaw-deploy "$2" "$3"; }
# deploy_lock_release PROJECT TOKEN
# shellcheck disable=SC2016 # the script's $1… are its own arguments
deploy_lock_release() { bash -c 'set -u
fail() { printf '\''error=%s\n'\'' "$*"; exit 3; }
state=$1 token=$2 lease=0
[ -d "$state/lock" ] || { echo released=not-ours; exit 0; }
note=$state/lock/holder
need_flock() { command -v flock >/dev/null || fail "flock (util-linux) is not installed on the server; the deploy lock needs it"; }
guard() {
  need_flock
  { exec 9>>"$state/lock.guard"; } 2>/dev/null || fail "cannot open the lock guard $state/lock.guard as $(id -un)"
  flock -w 10 9 || fail "another process kept the lock guard $state/lock.guard busy for 10 s"
}
unguard() { exec 9>&-; }
write_note() {
  printf '\''%s\nexpires=%s\n'\'' "$1" "$(($(date +%s) + lease))" > "$note.tmp" && mv -f -- "$note.tmp" "$note"
}
holder_text() { head -n 1 -- "$note" 2>/dev/null; }
# a holder as others see it: without its token (only the holder'\''s own steps need it) and bounded
shown() { printf '\''%s'\'' "$1" | sed '\''s/ token=[^ ]*//g'\'' | head -c 400; }
expiry() { sed -n '\''s/^expires=\([0-9][0-9]*\)$/\1/p'\'' -- "$note" 2>/dev/null | tail -n 1; }
guard
if [ -n "$token" ] && grep -qF -- "token=$token" "$note" 2>/dev/null; then rm -rf -- "$state/lock"; echo released=yes; else echo released=not-ours; fi' openclaw-unlock "$1"/.openclaw-deploy "$2"; }
# END generated
lock_token='' heartbeat='' lost_to=''

# lock_take WHAT: takes the project's deploy lock for backup or restore, waiting up to lock_wait
# seconds for a deploy that holds it. The EXIT trap (release_lock) gives it back.
lock_take() {
  local holder out rc=0
  lock_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  [[ $lock_token =~ ^[0-9a-f]{32}$ ]] || fail "cannot read random bytes for the lock's token from /dev/urandom"
  holder="$PROG $1 by $(id -un) on $HOSTNAME pid $$ since $(date -u +%FT%TZ) token=$lock_token"
  out=$(deploy_lock_take "$project" "$holder" 0 "$LOCK_LEASE") || rc=$?
  if ((rc == DEPLOY_LOCK_HELD && lock_wait > 0)); then
    printf '%s: a deploy holds the lock of %s (held by: %s); waiting up to %ss for it\n' "$PROG" "$project" "$(holder_in "$out")" "$lock_wait" >&2
    rc=0
    out=$(deploy_lock_take "$project" "$holder" "$lock_wait" "$LOCK_LEASE") || rc=$?
  fi
  case $rc in
    0) ;;
    "$DEPLOY_LOCK_HELD") fail "a deploy holds the lock of $project (held by: $(holder_in "$out")); try again once it has finished" ;;
    *) fail "cannot take the deploy lock of $project: $(fact error "$out")" ;;
  esac
  if [[ $out == *took_over=* ]]; then
    local expired
    expired=$(fact expired_for "$out")
    say "took over the deploy lock of $project from $(fact took_over "$out")${expired:+, whose lease had expired ${expired}s ago}"
  fi
  lock_heartbeat "$$" </dev/null >/dev/null 2>&1 &
  heartbeat=$!
}

# Renews the lease every LOCK_RENEW_EVERY seconds for as long as this script runs. Once the script
# is gone (killed: this loop then has another parent) the lease is left to run out.
lock_heartbeat() {
  local nap='' me=$BASHPID rc
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  while :; do
    sleep "$LOCK_RENEW_EVERY" &
    nap=$!
    wait "$nap" || exit 0
    [[ $(parent_of "$me") == "$1" ]] || exit 0
    rc=0
    deploy_lock_renew "$project" "$lock_token" "$LOCK_LEASE" || rc=$?
    # another holder now: the script finds out at its next check (lock_held)
    ((rc != DEPLOY_LOCK_LOST)) || exit 0
  done
}

# the parent of process $1 (the command name in /proc/PID/stat is in parentheses and may hold spaces)
parent_of() {
  local stat ppid
  stat=$(<"/proc/$1/stat") || return 1
  read -r _ ppid _ <<<"${stat##*) }"
  printf '%s\n' "$ppid"
}

# Renews the lease now. Returns 1 when a deploy has taken the lock over (this script stalled for
# longer than its lease), naming the new holder in lost_to; fails on any other error.
lock_held() {
  local out rc=0
  out=$(deploy_lock_renew "$project" "$lock_token" "$LOCK_LEASE") || rc=$?
  case $rc in
    0) return 0 ;;
    "$DEPLOY_LOCK_LOST") lost_to=$(fact lock_lost "$out") lock_token='' && return 1 ;;
    *) fail "cannot renew the deploy lock of $project: $(fact error "$out")" ;;
  esac
}

# Gives the lock back if this script still holds it (its note carries our token), never another's.
release_lock() {
  if [[ -n $heartbeat ]]; then kill "$heartbeat" 2>/dev/null || true; fi
  heartbeat=''
  [[ -n $lock_token ]] || return 0
  local out
  out=$(deploy_lock_release "$project" "$lock_token") ||
    printf '%s: warning: could not release the deploy lock of %s: %s\n' "$PROG" "$project" "$(fact error "$out")" >&2
  lock_token=''
}

# ---------------------------------------------------------------------------------------------
# backup

# the items of FILES and FOLDERS that exist in the project
present_items() {
  local item
  for item in "${FILES[@]}" "${FOLDERS[@]}"; do
    if [[ -e $project/$item || -L $project/$item ]]; then printf '%s\n' "$item"; fi
  done
}

need_project() {
  [[ -d $project ]] || fail "no project folder at $project (give the deployment folder, e.g. $PROG ~/openclaw-prd)"
  [[ -r $project && -x $project ]] || fail "cannot read the project folder $project as $(id -un)"
}

# make_archive [SUFFIX]: writes the archive, prints its path
make_archive() {
  local suffix=${1:-} items=() item
  need_project
  mapfile -t items < <(present_items)
  ((${#items[@]})) || fail "nothing to back up in $project: no .env, compose file, config/ or workspace/ (is it the deployment folder?)"

  # Every file must be readable, or the archive would silently miss it: say which one is not.
  local unreadable
  unreadable=$(cd "$project" && find "${items[@]}" \( ! -readable -o \( -type d ! -executable \) \) -print -quit 2>&1) ||
    fail "cannot read $project: ${unreadable##*find: }"
  [[ -z $unreadable ]] || fail "cannot read $project/$unreadable as $(id -un): fix its owner or mode, or the backup would miss it"

  local err
  err=$(umask 077 && mkdir -p -- "$dir" 2>&1) || fail "cannot create the backup folder $dir: ${err##*: }"
  [[ -w $dir ]] || fail "cannot write to the backup folder $dir as $(id -un)"

  local stamp base n=1
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  base="$name-$stamp${suffix:+-$suffix}"
  while [[ -e $dir/$base.tar.gz ]]; do n=$((n + 1)); base="$name-$stamp-$n${suffix:+-$suffix}"; done
  local target=$dir/$base.tar.gz partial=$dir/.$base.tar.gz.partial
  trap 'rm -f -- "$partial"' EXIT
  if ! err=$( (umask 077 && tar -czf "$partial" -C "$project" -- "${items[@]}") 2>&1); then
    rm -f -- "$partial"
    fail "cannot write the backup to $dir: $(tar_reason "$err")"
  fi
  err=$(gzip -t -- "$partial" 2>&1) || { rm -f -- "$partial"; fail "the new archive does not read back: $err"; }
  mv -f -- "$partial" "$target"
  trap - EXIT
  printf '%s\n' "$target"
}

# The line of tar's or gzip's complaint that says what went wrong (not "Child returned status 1").
tar_reason() {
  local line
  line=$(grep -v -e '^[[:space:]]*$' -e 'Child returned status' -e 'Error is not recoverable' -e 'Exiting with failure' <<<"$1" | head -n 1)
  printf '%s\n' "${line:-$1}"
}

is_archive_name() { [[ $1 =~ ^${name//./\\.}-([0-9]{8})T([0-9]{6})Z(-[a-z0-9-]+)?\.tar\.gz$ ]]; }

# this project's archives in the backup folder, newest first
archives() {
  local f
  [[ -d $dir ]] || return 0
  find "$dir" -maxdepth 1 -type f -name '*.tar.gz' -printf '%T@ %f\n' | sort -rn | cut -d' ' -f2- |
    while read -r f; do if is_archive_name "$f"; then printf '%s\n' "$f"; fi; done
}

# remove this project's archives older than keep_days; never KEEP (the archive just made)
prune() {
  local keep=$1 now cutoff f d t removed=0 kept=0
  now=$(date -u +%s)
  cutoff=$((now - keep_days * 86400))
  while read -r f; do
    [[ -n $f ]] || continue
    is_archive_name "$f" || continue
    d=${BASH_REMATCH[1]} t=${BASH_REMATCH[2]}
    if [[ $dir/$f != "$keep" ]] &&
      (($(date -u -d "${d:0:4}-${d:4:2}-${d:6:2} ${t:0:2}:${t:2:2}:${t:4:2}" +%s) < cutoff)); then
      rm -f -- "${dir:?}/$f" || fail "cannot remove the old archive $dir/$f"
      removed=$((removed + 1))
    else
      kept=$((kept + 1))
    fi
  done < <(archives)
  say "kept $kept archive(s) of the last $keep_days days in $dir; removed $removed older one(s)"
}

cmd_backup() {
  local archive size
  need_project
  trap release_lock EXIT
  lock_take backup
  archive=$(make_archive)
  if ! lock_held; then
    rm -f -- "$archive"
    fail "a deploy took over the lock of $project while it was being archived (held by: $lost_to), as this backup could not renew its lease for ${LOCK_LEASE}s: no archive kept; run the backup again"
  fi
  size=$(stat -c %s -- "$archive")
  say "backed up $project to $archive ($(human_size "$size"))"
  prune "$archive"
}

cmd_list() {
  local f any=''
  while read -r f; do
    [[ -n $f ]] || continue
    any=1
    printf '%s\t%s\n' "$f" "$(human_size "$(stat -c %s -- "$dir/$f")")"
  done < <(archives)
  [[ -n $any ]] || say "no archives of $name in $dir"
}

# ---------------------------------------------------------------------------------------------
# restore

image_line() { # the OPENCLAW_IMAGE value a .env names (empty when none)
  [[ -f $1 ]] || return 0
  sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}OPENCLAW_IMAGE[[:space:]]*=[[:space:]]*//p' -- "$1" | tail -n 1
}

cmd_restore() {
  [[ $archive == */* || ! -e $dir/$archive ]] || archive=$dir/$archive
  [[ -f $archive ]] || fail "no archive $archive (the archives of $name: $PROG list)"
  [[ -r $archive ]] || fail "cannot read $archive as $(id -un)"
  local entries err
  entries=$(tar -tzf "$archive" 2>&1) || fail "$archive is not a readable backup archive: $(tar_reason "$entries")"
  # only what a backup holds, and nothing that could land outside the project folder
  local entry top allowed=" ${FILES[*]} ${FOLDERS[*]} "
  while read -r entry; do
    [[ -n $entry ]] || continue
    entry=${entry#./}
    top=${entry%%/*}
    if [[ $entry == /* || /$entry/ == */../* || $allowed != *" $top "* ]]; then
      fail "$archive is not a backup of an OpenClaw project: it holds '$entry'"
    fi
  done <<<"$entries"

  mkdir -p -- "$project" || fail "cannot create the project folder $project"
  # The deploy action's lock: a deploy must not switch .env while it is being replaced.
  trap release_lock EXIT
  lock_take restore

  local image_before safety=''
  image_before=$(image_line "$project/.env")
  if [[ -n $(present_items) ]]; then
    safety=$(make_archive before-restore)
    say "saved the current state first: $safety"
  fi

  staging=$(mktemp -d "$project/.openclaw-restore.XXXXXX") || fail "cannot create a staging folder in $project"
  trap 'rm -rf -- "$staging"; release_lock' EXIT
  err=$(tar -xzpf "$archive" -C "$staging/" 2>&1) || fail "cannot unpack $archive: $(tar_reason "$err")"
  lock_held || fail "a deploy took over the lock of $project (held by: $lost_to), as this restore could not renew its lease for ${LOCK_LEASE}s: nothing was replaced; restore again"
  mkdir "$staging/.old"
  # From here a failure keeps the staging folder: it holds the files being replaced.
  trap 'printf "%s: the files replaced so far are in %s\n" "$PROG" "$staging/.old" >&2; release_lock' EXIT
  local restored=()
  for top in "${FILES[@]}" "${FOLDERS[@]}"; do
    [[ -e $staging/$top || -L $staging/$top ]] || continue
    if [[ -e $project/$top || -L $project/$top ]]; then mv -- "$project/$top" "$staging/.old/$top"; fi
    mv -- "$staging/$top" "$project/$top"
    restored+=("$top")
  done
  trap 'rm -rf -- "$staging"; release_lock' EXIT
  say "restored ${restored[*]} in $project from $archive"
  local image_after
  image_after=$(image_line "$project/.env")
  if [[ $image_after != "$image_before" ]]; then
    say "note: the restored .env names OPENCLAW_IMAGE=$image_after (it named ${image_before:-nothing} before);"
    say "      the next 'docker compose up' runs that image. Deploy again with the action to change it."
  fi
  say "apply it: cd $project && docker compose up -d --force-recreate"
}

main() {
  parse_args "$@"
  case $command in
    backup) cmd_backup ;;
    list) cmd_list ;;
    restore) cmd_restore ;;
  esac
}

main "$@"
