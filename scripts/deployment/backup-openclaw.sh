#!/usr/bin/env bash
# Backups of one OpenClaw gateway's configuration, made and restored on the server itself.
#
#   backup-openclaw.sh [backup] [--dir DIR] [--keep-days N] [PROJECT]
#       Archive the project's .env, compose files, config/ and workspace/ into
#       DIR/<project>-<UTC time>.tar.gz, then remove this project's archives older than N days.
#   backup-openclaw.sh list [--dir DIR] [PROJECT]
#       The project's archives, newest first.
#   backup-openclaw.sh restore [--dir DIR] ARCHIVE [PROJECT]
#       Put those files back exactly as archived (bytes and modes). The current state is archived
#       first, and the deploy action's lock is held meanwhile so no deploy runs at the same time.
#       Containers are not touched: apply the restored files with
#       `docker compose up -d --force-recreate` in the project folder.
#
# PROJECT   the deployment folder (default $OPENCLAW_PROJECT, else ~/openclaw-prd)
# --dir     where the archives are (default ~/backups/<name of PROJECT>)
# --keep-days N   retention in days (default 7); the archive just made is always kept
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
LOCK_DIR=.openclaw-deploy/lock # the deploy action's lock (see the action's README)

PROG=${0##*/}
fail() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n' "$PROG" "$*" >&2; printf "Run '%s --help' for usage.\n" "$PROG" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0; }
say() { printf '%s\n' "$*"; }

human_size() { # bytes -> e.g. 12.3 KiB
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ }
    printf(i == 1 ? "%d %s" : "%.1f %s", b, u[i]) }'
}

# ---------------------------------------------------------------------------------------------
# arguments

command=backup
dir=''
keep_days=$KEEP_DAYS_DEFAULT
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
      --) shift; positional+=("$@"); break ;;
      -*) usage_error "unknown option: $1" ;;
      *) positional+=("$1"); shift ;;
    esac
  done
  if ! [[ $keep_days =~ ^[0-9]+$ ]] || ((keep_days < 1 || keep_days > 3650)); then
    usage_error "--keep-days must be a whole number of days from 1 to 3650, not '$keep_days'"
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
# backup

# the items of FILES and FOLDERS that exist in the project
present_items() {
  local item
  for item in "${FILES[@]}" "${FOLDERS[@]}"; do
    if [[ -e $project/$item || -L $project/$item ]]; then printf '%s\n' "$item"; fi
  done
}

# make_archive [SUFFIX]: writes the archive, prints its path
make_archive() {
  local suffix=${1:-} items=() item
  [[ -d $project ]] || fail "no project folder at $project (give the deployment folder, e.g. $PROG ~/openclaw-prd)"
  [[ -r $project && -x $project ]] || fail "cannot read the project folder $project as $(id -un)"
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
  archive=$(make_archive)
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

release_lock() { rm -rf -- "${project:?}/$LOCK_DIR"; }

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
  mkdir -p -- "$project/${LOCK_DIR%/*}" 2>/dev/null || fail "cannot create $project/${LOCK_DIR%/*} as $(id -un)"
  if ! mkdir -- "$project/$LOCK_DIR" 2>/dev/null; then
    fail "a deploy holds the lock of $project (held by: $(head -c 300 -- "$project/$LOCK_DIR/holder" 2>/dev/null | tr -s '\n' ' ' | sed 's/ $//')); try again once it has finished"
  fi
  trap release_lock EXIT
  printf 'backup-openclaw.sh restore by %s on %s, pid %s, since %s\n' "$(id -un)" "$(hostname)" "$$" "$(date -u +%FT%TZ)" \
    >"$project/$LOCK_DIR/holder"

  local image_before safety=''
  image_before=$(image_line "$project/.env")
  if [[ -n $(present_items) ]]; then
    safety=$(make_archive before-restore)
    say "saved the current state first: $safety"
  fi

  staging=$(mktemp -d "$project/.openclaw-restore.XXXXXX") || fail "cannot create a staging folder in $project"
  trap 'rm -rf -- "$staging"; release_lock' EXIT
  err=$(tar -xzpf "$archive" -C "$staging/" 2>&1) || fail "cannot unpack $archive: $(tar_reason "$err")"
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
