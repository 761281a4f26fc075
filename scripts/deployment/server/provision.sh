#!/usr/bin/env bash
# Makes this server ready for the OpenClaw deploy action. Runs as root on the server:
# setup-server.sh uploads this folder and runs it over SSH (it can also be run by hand, see --help).
# Idempotent: every step looks first, changes only what is missing, and says which it did.
#
#   provision.sh --pubkey 'ssh-ed25519 AAAA…' [options]
#
#   --pubkey KEY           public half of the deploy key (what the action logs in with); required
#   --user NAME            deploy user (default deploy): docker group, no sudo, no password
#   --path DIR             deployment folder (default ~NAME/openclaw-prd)
#   --image REF            OPENCLAW_IMAGE in a new .env (default openclaw:not-deployed-yet; the
#                          first deploy sets the real image)
#   --backup-dir DIR       archives of the daily backup (default ~NAME/backups/<folder name>)
#   --backup-time HH:MM    when the daily backup runs, server time (default 03:17)
#   --disable-password-login   SSH accepts keys only (refused when the login user has no key)
#   --firewall             ufw: deny incoming except SSH on --ssh-port
#   --ssh-port N           the SSH port to keep open (default 22)
#   --login-user NAME      who runs this (default $SUDO_USER, else root): checked to have a key
#   --facts FILE           write facts for setup-server.sh (host keys, the folder used) to FILE
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BACKUP_SCRIPT_SOURCE=$HERE/../backup-openclaw.sh
COMPOSE_TEMPLATE=$HERE/docker-compose.yml
BACKUP_SCRIPT=/usr/local/bin/backup-openclaw.sh
SSHD_DROPIN=/etc/ssh/sshd_config.d/10-openclaw-keys-only.conf
PLACEHOLDER_IMAGE=openclaw:not-deployed-yet

user=deploy path='' image=$PLACEHOLDER_IMAGE pubkey='' backup_dir='' backup_time=03:17
disable_password_login='' firewall='' ssh_port=22 login_user=${SUDO_USER:-root} facts=/dev/null
changes=0

say() { printf '%s\n' "$*"; }
changed() { changes=$((changes + 1)); printf '  changed  %s\n' "$*"; }
kept() { printf '  ok       %s\n' "$*"; }
warn() { printf '  warning  %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*"; exit 1; }
fact() { printf '%s=%s\n' "$1" "$2" >>"$facts"; }

parse_args() {
  while (($#)); do
    case $1 in
      -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      --user | --path | --image | --pubkey | --backup-dir | --backup-time | --ssh-port | --login-user | --facts)
        (($# >= 2)) || fail "$1 needs a value"
        local v=$2 opt=${1#--}
        printf -v "${opt//-/_}" '%s' "$v"
        shift 2 ;;
      --disable-password-login) disable_password_login=1; shift ;;
      --firewall) firewall=1; shift ;;
      *) fail "unknown argument: $1 (see --help)" ;;
    esac
  done
  [[ $user =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "--user: '$user' is not a Linux user name"
  [[ $login_user =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "--login-user: '$login_user' is not a Linux user name"
  [[ -z $path || $path =~ ^(/[A-Za-z0-9._-]+)+$ ]] || fail "--path: '$path' is not an absolute folder of letters, digits, '.', '_' and '-'"
  [[ -z $backup_dir || $backup_dir =~ ^(/[A-Za-z0-9._-]+)+$ ]] || fail "--backup-dir: '$backup_dir' is not an absolute folder"
  [[ $image =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || fail "--image: '$image' is not an image reference"
  [[ $pubkey =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))\ [A-Za-z0-9+/]+=*$ ]] ||
    fail "--pubkey must be an OpenSSH public key (type and base64 key, no options), e.g. 'ssh-ed25519 AAAA…'"
  [[ $backup_time =~ ^([01][0-9]|2[0-3]):([0-5][0-9])$ ]] || fail "--backup-time: '$backup_time' is not HH:MM"
  if ! [[ $ssh_port =~ ^[0-9]+$ ]] || ((ssh_port < 1 || ssh_port > 65535)); then fail "--ssh-port: '$ssh_port' is not a port"; fi
}

# ---------------------------------------------------------------------------------------------
# what must be there before anything changes

preflight() {
  [[ $(id -u) -eq 0 ]] || fail "must run as root (setup-server.sh uses sudo for a non-root login)"
  local c missing=()
  for c in useradd usermod getent install tar gzip find sshd ssh-keygen; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  ((${#missing[@]} == 0)) || fail "missing on this server: ${missing[*]}"
  command -v docker >/dev/null 2>&1 ||
    fail "Docker is not installed. Install Docker Engine with the Compose v2 plugin (Docker's packages for your distribution), then run setup-server.sh again"
  local out
  out=$(docker info --format '{{.ServerVersion}}' 2>&1) || fail "the Docker daemon does not answer: $out (is the docker service running?)"
  docker compose version >/dev/null 2>&1 || fail "the Docker Compose v2 plugin is missing ('docker compose version' fails): install docker-compose-plugin"
  command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 ||
    fail "neither curl nor wget is installed; the deploy's health check needs one (apt-get install curl)"
  getent group docker >/dev/null || fail "there is no docker group (Docker's packages create it): the deploy user could not use Docker"
  if [[ -n $firewall ]]; then
    command -v ufw >/dev/null 2>&1 || fail "--firewall uses ufw, which is not installed (apt-get install ufw), or leave out --firewall"
  fi
  if [[ -n $disable_password_login ]]; then
    sshd -T >/dev/null 2>&1 || fail "sshd -T fails: the SSH server's configuration is broken; fix it first"
    local home
    home=$(getent passwd "$login_user" | cut -d: -f6)
    if ! grep -qE '^[^#]*(ssh-|ecdsa-|sk-)' "$home/.ssh/authorized_keys" 2>/dev/null; then
      fail "refusing --disable-password-login: $login_user has no key in $home/.ssh/authorized_keys and would be locked out"
    fi
  fi
  [[ -f $BACKUP_SCRIPT_SOURCE && -f $COMPOSE_TEMPLATE ]] || fail "backup-openclaw.sh or docker-compose.yml is missing beside this script"
}

# ---------------------------------------------------------------------------------------------
# steps

ensure_user() {
  if ! getent passwd "$user" >/dev/null; then
    useradd --create-home --shell /bin/bash --user-group --groups docker "$user"
    changed "created user $user (groups: $user, docker)"
  else
    kept "user $user exists"
  fi
  if ! id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
    usermod -aG docker "$user"
    changed "added $user to the docker group"
  fi
  # A locked password ("!") makes sshd without PAM refuse even key logins; "*" means: no password
  # can ever match, keys only.
  local hash
  hash=$(getent shadow "$user" | cut -d: -f2)
  if [[ -z $hash || $hash == '!' || $hash == '!!' || $hash == '!*' ]]; then
    usermod -p '*' "$user"
    changed "$user logs in with SSH keys only (no password)"
  fi
  local g
  for g in sudo wheel admin root; do
    if id -nG "$user" | tr ' ' '\n' | grep -qx "$g"; then
      warn "$user is in the $g group and may gain root; remove it: gpasswd -d $user $g"
    fi
  done
  home=$(getent passwd "$user" | cut -d: -f6)
  group=$(id -gn "$user")
  uid=$(id -u "$user")
  gid=$(id -g "$user")
  [[ -d $home ]] || { install -d -m 750 -o "$user" -g "$group" "$home"; changed "created $home"; }
}

# ensure_dir DIR MODE: owned by the deploy user
ensure_dir() {
  local d=$1 mode=$2
  if [[ ! -d $d ]]; then
    install -d -m "$mode" -o "$user" -g "$group" "$d"
    changed "created $d"
    return
  fi
  if [[ $(stat -c '%U:%G %a' "$d") != "$user:$group $mode" ]]; then
    chown "$user:$group" "$d"
    chmod "$mode" "$d"
    changed "$d: owner $user, mode $mode"
  fi
}

ensure_key() {
  ensure_dir "$home/.ssh" 700
  local keys=$home/.ssh/authorized_keys blob=${pubkey#* }
  if [[ -f $keys ]] && grep -qF -- " $blob" "$keys"; then
    kept "deploy key is in $keys"
  else
    # restrict: the action only runs commands; no forwarding, agent, X11 or terminal with this key
    printf 'restrict %s openclaw-deploy\n' "$pubkey" >>"$keys"
    changed "installed the deploy key in $keys (restrict: commands only)"
  fi
  if [[ $(stat -c '%U %a' "$keys") != "$user 600" ]]; then
    chown "$user:$group" "$keys"
    chmod 600 "$keys"
    changed "$keys: owner $user, mode 600"
  fi
}

ensure_project() {
  local parent=${path%/*}
  if [[ -n $parent && ! -d $parent ]]; then install -d -m 755 "$parent"; changed "created $parent"; fi
  ensure_dir "$path" 750
  ensure_dir "$path/config" 700
  ensure_dir "$path/workspace" 700
  # upstream's image runs the gateway as node (uid 1000): it must own what it writes
  ((uid == 1000)) || warn "$user has uid $uid, but upstream's image runs the gateway as uid 1000: give it $path/config and $path/workspace (chown -R 1000:1000), or run it as $user with a compose override (user: \"$uid:$gid\")"

  local env=$path/.env
  if [[ ! -e $env ]]; then
    local token tmp
    token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    tmp=$(mktemp "$path/.env.XXXXXX")
    cat >"$tmp" <<EOF
# OpenClaw gateway settings for this server (created by setup-server.sh on $(date -u +%F)), the
# variables upstream's docker-setup.sh writes. The deploy action changes only the OPENCLAW_IMAGE line
# (and the variables its tenant-env input names); every other line is yours.
OPENCLAW_CONFIG_DIR=$path/config
OPENCLAW_WORKSPACE_DIR=$path/workspace
OPENCLAW_GATEWAY_PORT=18789
OPENCLAW_BRIDGE_PORT=18790
OPENCLAW_GATEWAY_BIND=lan
# Clients authenticate to the gateway with this token: keep it secret.
OPENCLAW_GATEWAY_TOKEN=$token
OPENCLAW_IMAGE=$image
OPENCLAW_EXTRA_MOUNTS=
OPENCLAW_HOME_VOLUME=
OPENCLAW_DOCKER_APT_PACKAGES=
# Provider credentials: fill in what the tenant uses.
CLAUDE_AI_SESSION_KEY=
CLAUDE_WEB_SESSION_KEY=
CLAUDE_WEB_COOKIE=
OPENAI_API_KEY=
EOF
    chown "$user:$group" "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$env"
    changed "created $env (mode 600) with a new gateway token ${token:0:4}… (64 hex characters, not shown)"
  else
    kept "$env exists (its gateway token is kept)"
    if [[ $(stat -c '%U %a' "$env") != "$user 600" ]]; then
      chown "$user:$group" "$env"
      chmod 600 "$env"
      changed "$env: owner $user, mode 600"
    fi
    grep -qE '^[[:space:]]*(export[[:space:]]+)?OPENCLAW_IMAGE=' "$env" ||
      kept "$env has no OPENCLAW_IMAGE= line: the compose file's default image runs until the first deploy, which adds the line (where the compose file takes its image from \${OPENCLAW_IMAGE:-...}, as the template does)"
  fi

  local f existing=''
  for f in compose.yaml compose.yml docker-compose.yaml docker-compose.yml; do
    if [[ -f $path/$f ]]; then existing=$f; break; fi
  done
  if [[ -z $existing ]]; then
    install -m 640 -o "$user" -g "$group" "$COMPOSE_TEMPLATE" "$path/docker-compose.yml"
    changed "installed $path/docker-compose.yml"
  elif [[ $existing == docker-compose.yml ]] && cmp -s "$COMPOSE_TEMPLATE" "$path/$existing"; then
    kept "$path/$existing is the current template"
  else
    kept "$path/$existing is yours (differs from the template): left as it is"
  fi
}

ensure_backups() {
  if [[ -f $BACKUP_SCRIPT ]] && cmp -s "$BACKUP_SCRIPT_SOURCE" "$BACKUP_SCRIPT"; then
    kept "$BACKUP_SCRIPT is current"
  else
    install -m 755 -o root -g root "$BACKUP_SCRIPT_SOURCE" "$BACKUP_SCRIPT"
    changed "installed $BACKUP_SCRIPT"
  fi
  if [[ ${backup_dir%/*} == "$home/backups" ]]; then
    ensure_dir "$home/backups" 700
  elif [[ ! -d ${backup_dir%/*} ]]; then
    install -d -m 755 "${backup_dir%/*}"
    changed "created ${backup_dir%/*}"
  fi
  ensure_dir "$backup_dir" 700

  local slug cron_file hh mm content
  slug=$(printf '%s' "${path#/}" | tr -c 'A-Za-z0-9_-' '-')
  cron_file=/etc/cron.d/openclaw-backup-$slug
  hh=${backup_time%:*} mm=${backup_time#*:}
  content=$(
    cat <<EOF
# Daily backup of the OpenClaw project $path (written by setup-server.sh).
# Archives in $backup_dir; the last 7 days are kept. Restore: backup-openclaw.sh restore --help
SHELL=/bin/bash
PATH=/usr/local/bin:/usr/bin:/bin
$((10#$mm)) $((10#$hh)) * * * $user $BACKUP_SCRIPT --dir $backup_dir $path >>$backup_dir/backup.log 2>&1
EOF
  )
  if [[ -f $cron_file && $(<"$cron_file") == "$content" ]]; then
    kept "daily backup at $backup_time: $cron_file"
  else
    printf '%s\n' "$content" >"$cron_file.tmp"
    chmod 644 "$cron_file.tmp"
    mv -f "$cron_file.tmp" "$cron_file"
    changed "daily backup at $backup_time: $cron_file"
  fi
  if ! command -v cron >/dev/null 2>&1 && ! command -v crond >/dev/null 2>&1; then
    warn "no cron daemon is installed: the daily backup will not run until you install one (apt-get install cron)"
  fi
}

reload_sshd() {
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || return 1
    return 0
  fi
  local pidfile pid
  pidfile=$(sshd -T 2>/dev/null | awk '$1 == "pidfile" { print $2 }')
  pid=$(cat "${pidfile:-/run/sshd.pid}" 2>/dev/null) || return 1
  kill -HUP "$pid"
}

ensure_keys_only_ssh() {
  local content
  content=$(
    cat <<'EOF'
# Written by setup-server.sh --disable-password-login: SSH logins with keys only.
# sshd uses the first value it reads, so this file's early name makes it win over later ones.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
  )
  if [[ -f $SSHD_DROPIN && $(<"$SSHD_DROPIN") == "$content" ]]; then
    kept "SSH accepts keys only ($SSHD_DROPIN)"
  else
    mkdir -p "${SSHD_DROPIN%/*}"
    printf '%s\n' "$content" >"$SSHD_DROPIN"
    local err
    if ! err=$(sshd -t 2>&1); then
      rm -f "$SSHD_DROPIN"
      fail "sshd rejects the new setting ($err); nothing changed"
    fi
    reload_sshd || warn "could not reload sshd: restart the SSH service for keys-only logins to apply"
    changed "SSH accepts keys only ($SSHD_DROPIN); sshd reloaded"
  fi
  if sshd -T 2>/dev/null | grep -qx 'passwordauthentication yes'; then
    fail "sshd still allows passwords: /etc/ssh/sshd_config does not include sshd_config.d/*.conf first, or sets PasswordAuthentication itself; set it to no there"
  fi
}

ensure_firewall() {
  local status
  status=$(ufw status verbose 2>&1) || fail "ufw status failed: $status"
  if grep -q '^Status: active' <<<"$status" &&
    grep -q 'Default: deny (incoming), allow (outgoing)' <<<"$status" &&
    grep -Eq "^$ssh_port/tcp +ALLOW IN +Anywhere" <<<"$status"; then
    kept "firewall (ufw) active: incoming denied except SSH on port $ssh_port"
    return
  fi
  # SSH first, so enabling the firewall cannot cut this session
  ufw allow "$ssh_port/tcp" >/dev/null
  ufw default deny incoming >/dev/null
  ufw default allow outgoing >/dev/null
  ufw --force enable >/dev/null
  changed "firewall (ufw) active: incoming denied except SSH on port $ssh_port"
}

# What the action will do first on this server, as the deploy user: reach Docker, read the project.
check_as_deploy() {
  local out
  out=$(cd / && su -s /bin/sh -c 'docker info --format "{{.ServerVersion}}"' "$user" 2>&1) ||
    fail "$user cannot use Docker: $out (a new group membership needs a new login: is the socket's group docker?)"
  # ($path holds only letters, digits, '.', '_', '-' and '/': checked in parse_args)
  out=$(cd / && su -s /bin/sh -c "cd $path && docker compose config --quiet" "$user" 2>&1) ||
    fail "docker compose rejects the project in $path as $user: $out"
  kept "$user can use Docker and the project in $path is valid"
}

report_host_keys() {
  local k
  while read -r k; do
    [[ -f $k.pub ]] && fact hostkey "$(cut -d' ' -f1,2 "$k.pub")"
  done < <(sshd -T 2>/dev/null | awk '$1 == "hostkey" { print $2 }')
}

main() {
  parse_args "$@"
  preflight
  say "Provisioning $(hostname) for the OpenClaw deploy action"
  local home group uid gid
  ensure_user
  path=${path:-$home/openclaw-prd}
  backup_dir=${backup_dir:-$home/backups/${path##*/}}
  [[ $path =~ ^(/[A-Za-z0-9._-]+)+$ && $backup_dir =~ ^(/[A-Za-z0-9._-]+)+$ ]] ||
    fail "$user's home $home gives folders with unusual characters: give --path and --backup-dir"
  ensure_key
  ensure_project
  ensure_backups
  if [[ -n $disable_password_login ]]; then ensure_keys_only_ssh; fi
  if [[ -n $firewall ]]; then ensure_firewall; fi
  check_as_deploy
  fact path "$path"
  fact user "$user"
  report_host_keys
  fact changes "$changes"
  if ((changes == 0)); then
    say "Nothing changed: this server was already provisioned."
  else
    say "$changes change(s) made."
  fi
}

main "$@"
