#!/usr/bin/env bash
# Provision a fresh server for the OpenClaw deploy action, from your own machine, in one command.
#
#   setup-server.sh [options] [LOGIN@]HOST [PORT]
#
# Logs in over SSH as LOGIN (default root; a sudo user works too) and, idempotently: creates the
# deploy user (docker group, no sudo, no password), installs the deploy key (generated here first
# if it does not exist), creates the deployment folder with a .env holding a new gateway token
# (mode 600, never printed) and the compose file, and installs the daily backup (cron). At the end
# it prints the server's registry entry, with its host key fingerprints, and its known_hosts lines.
# Run it again at any time: it changes only what is missing and says so.
#
# Options:
#   --name NAME         server name in the registry entry (default: HOST)
#   --tenant NAME       tenant in the registry entry (default: the server name)
#   --region NAME       region in the registry entry
#   --user NAME         deploy user on the server (default deploy)
#   --path DIR          deployment folder on the server (default ~USER/openclaw-prd)
#   --key FILE          deploy key: FILE and FILE.pub, generated if FILE does not exist
#                       (default ~/.ssh/openclaw_deploy_ed25519); the same key for every server
#   --image REF         image a new .env names until the first deploy sets the real one
#   --backup-time HH:MM time of the daily backup, server time (default 03:17)
#   --disable-password-login   SSH on the server accepts keys only
#   --firewall          enable ufw on the server: incoming connections denied except SSH on PORT
#   -i FILE             key to log in as LOGIN with (passed to ssh)
#   -o OPTION           extra ssh option for that login, repeatable (e.g. -o StrictHostKeyChecking=accept-new)
#   -h, --help          this text
#
# Exit status: 0 ready, 1 provisioning failed (the reason is printed), 2 bad usage, 3 cannot log in.
set -euo pipefail

KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=${0##*/}
DEFAULT_USER=deploy
DEFAULT_PATH_NAME=openclaw-prd
CONNECT_TIMEOUT=15

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n' "$PROG" "$*" >&2; printf "Run '%s --help' for usage.\n" "$PROG" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0; }
say() { printf '%s\n' "$*"; }
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # one word for the remote shell

# the registry's own rules (servers.schema.json), so the printed entry is valid as it stands
WORD_RE='^[a-z0-9][a-z0-9._-]{0,62}$'
HOST_RE='^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|([0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{0,15})$'
USER_RE='^[a-z_][a-z0-9_-]{0,31}$'
PATH_RE='^(/[A-Za-z0-9._-]+)+$'

# (bash 3.2 compatible, as macOS ships it: no mapfile, no "${empty[@]}" under set -u)
login=root host='' port=22 name='' tenant='' region='' user=$DEFAULT_USER path=''
key=$HOME/.ssh/openclaw_deploy_ed25519 image='' backup_time='' harden_ssh='' firewall=''
ssh_extra=()

parse_args() {
  local npos=0 extra=''
  positional() { # HOST, then PORT; anything more is an error below
    npos=$((npos + 1))
    case $npos in 1) host=$1 ;; 2) port=$1 ;; *) extra+=" $1" ;; esac
  }
  while (($#)); do
    case $1 in
      -h | --help) usage ;;
      --name | --tenant | --region | --user | --path | --key | --image | --backup-time)
        (($# >= 2)) || usage_error "$1 needs a value"
        local var=${1#--}
        printf -v "${var//-/_}" '%s' "$2"
        shift 2 ;;
      --disable-password-login) harden_ssh=1; shift ;;
      --firewall) firewall=1; shift ;;
      -i) (($# >= 2)) || usage_error "-i needs a key file"; ssh_extra+=(-i "$2"); shift 2 ;;
      -o) (($# >= 2)) || usage_error "-o needs an ssh option"; ssh_extra+=(-o "$2"); shift 2 ;;
      --) shift; for a in "$@"; do positional "$a"; done; break ;;
      -*) usage_error "unknown option: $1" ;;
      *) positional "$1"; shift ;;
    esac
  done
  backup_time=${backup_time:-03:17}
  ((npos >= 1)) || usage_error "which server? give [LOGIN@]HOST [PORT]"
  [[ -z $extra ]] || usage_error "too many arguments: $host $port$extra"
  if [[ $host == *@* ]]; then login=${host%@*} host=${host##*@}; fi
  [[ $login =~ $USER_RE ]] || usage_error "'$login' is not a user name to log in as"
  [[ -n $host && $host =~ $HOST_RE ]] ||
    usage_error "'$host' is not a hostname or IP address (no scheme, port or path; the port is the second argument)"
  if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then usage_error "the port must be a number from 1 to 65535, not '$port'"; fi
  [[ $user =~ $USER_RE ]] || usage_error "--user: '$user' is not a Linux user name"
  [[ -z $path || $path =~ $PATH_RE ]] ||
    usage_error "--path: '$path' must be an absolute folder of letters, digits, '.', '_' and '-' (no trailing '/')"
  if [[ -z $name ]]; then
    name=$(printf '%s' "$host" | tr 'A-Z:' 'a-z-' | cut -c1-63)
  fi
  [[ $name =~ $WORD_RE ]] || usage_error "--name: '$name' must be 1 to 63 lower-case letters, digits, '.', '_' or '-'"
  tenant=${tenant:-$name}
  [[ $tenant =~ $WORD_RE ]] || usage_error "--tenant: '$tenant' must be 1 to 63 lower-case letters, digits, '.', '_' or '-'"
  [[ -z $region || $region =~ $WORD_RE ]] || usage_error "--region: '$region' must be 1 to 63 lower-case letters, digits, '.', '_' or '-'"
  [[ -z $image || $image =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || usage_error "--image: '$image' is not an image reference"
  [[ $backup_time =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] || usage_error "--backup-time: '$backup_time' is not HH:MM"
}

# ---------------------------------------------------------------------------------------------
# SSH to the server: one connection (ControlMaster) for every step, so a password or a security
# key is asked for once.

tmp=''
ssh_opts=()

# the command is meant to be expanded here: its words are quoted with q() where needed
# shellcheck disable=SC2029
on_server() { ssh "${ssh_opts[@]}" "$login@$host" "$@"; }

cleanup() {
  if ((${#ssh_opts[@]})); then ssh "${ssh_opts[@]}" -O exit "$login@$host" >/dev/null 2>&1 || true; fi
  if [[ -n $tmp ]]; then rm -rf -- "$tmp"; fi
}

connect() {
  # in /tmp, not $TMPDIR: the control socket's path must stay short (macOS' $TMPDIR is long)
  tmp=$(mktemp -d /tmp/openclaw-setup.XXXXXX)
  ssh_opts=(-p "$port" -o "ConnectTimeout=$CONNECT_TIMEOUT" -o ServerAliveInterval=15 -o ServerAliveCountMax=4
    -o ControlMaster=auto -o "ControlPath=$tmp/%C" -o ControlPersist=300 ${ssh_extra[@]+"${ssh_extra[@]}"})
  say "Connecting to $login@$host port $port"
  local out reason
  if ! out=$(on_server true 2>&1 </dev/null); then
    reason=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1)
    case $out in
      *'Host key verification failed'* | *'REMOTE HOST IDENTIFICATION HAS CHANGED'*)
        reason="$reason Check the server's host key fingerprint (docs/deployment/AUTO-DEPLOY-SETUP.md, \"Host keys\") and add it to your known_hosts first; on the very first contact, -o StrictHostKeyChecking=accept-new accepts it." ;;
      *'Permission denied'*)
        reason="$reason Log in as root or as a user with sudo, with a key the server accepts (-i FILE)." ;;
    esac
    printf '%s: cannot log in to %s port %s as %s: %s\n' "$PROG" "$host" "$port" "$login" "$reason" >&2
    exit 3
  fi
}

ensure_deploy_key() {
  if [[ -f $key ]]; then
    if [[ ! -f $key.pub ]]; then
      ssh-keygen -y -f "$key" >"$key.pub" || die "cannot derive $key.pub from $key"
    fi
    say "Using the deploy key $key"
  else
    mkdir -p "$(dirname "$key")"
    chmod 700 "$(dirname "$key")" 2>/dev/null || true
    ssh-keygen -q -t ed25519 -N '' -C "openclaw-deploy" -f "$key" </dev/null || die "ssh-keygen could not create $key"
    say "Generated the deploy key $key (its private half goes into the SSH_PRIVATE_KEY secret)"
  fi
  local type blob
  read -r type blob _ <"$key.pub" || die "cannot read $key.pub"
  pubkey="$type $blob"
}

provision() {
  local remote_dir become='' tty=()
  # COPYFILE_DISABLE: macOS' tar would add ._* files for extended attributes
  # shellcheck disable=SC2016 # $d is the server's
  remote_dir=$(COPYFILE_DISABLE=1 tar -C "$KIT" -cf - backup-openclaw.sh server |
    on_server 'umask 077; d=$(mktemp -d /tmp/openclaw-setup.XXXXXX) && tar -xf - -C "$d" && echo "$d"') ||
    die "could not upload the provisioning files to $host"
  if [[ $login != root ]]; then
    if on_server sudo -n true </dev/null >/dev/null 2>&1; then
      become='sudo -n'
    elif [[ -t 0 && -t 1 ]]; then
      become=sudo tty=(-t)
    else
      on_server "rm -rf $(q "$remote_dir")" </dev/null || true
      die "$login needs a password for sudo: run $PROG in a terminal, or log in as root"
    fi
  fi
  local args=(--user "$user" --pubkey "$pubkey" --backup-time "$backup_time" --ssh-port "$port" --login-user "$login"
    --facts "$remote_dir/facts")
  [[ -n $path ]] && args+=(--path "$path")
  [[ -n $image ]] && args+=(--image "$image")
  [[ -n $harden_ssh ]] && args+=(--disable-password-login)
  [[ -n $firewall ]] && args+=(--firewall)
  local remote a
  remote="$become bash $(q "$remote_dir/server/provision.sh")"
  for a in "${args[@]}"; do remote+=" $(q "$a")"; done
  local rc=0
  # shellcheck disable=SC2029
  ssh "${ssh_opts[@]}" ${tty[@]+"${tty[@]}"} "$login@$host" "$remote" || rc=$?
  facts=$(on_server "cat $(q "$remote_dir/facts") 2>/dev/null; rm -rf $(q "$remote_dir")" </dev/null | tr -d '\r') || true
  ((rc == 0)) || die "provisioning $host failed (exit $rc); the reason is above. Fix it and run $PROG again: finished steps are kept"
}

fact_values() { sed -n "s/^$1=//p" <<<"$facts"; }

fingerprint() { # "type base64" -> SHA256:…
  printf '%s\n' "$1" >"$tmp/key.pub"
  ssh-keygen -lf "$tmp/key.pub" | awk '{ print $2 }'
}

print_result() {
  local remote_path remote_user lines=() fps=() line k t
  remote_path=$(fact_values path | tail -n 1)
  remote_user=$(fact_values user | tail -n 1)
  [[ -n $remote_path ]] || die "the server did not report its deployment folder"
  # ed25519 first: the key type SSH clients prefer
  for t in ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521 ssh-rsa; do
    while read -r k; do
      [[ -n $k && ${k%% *} == "$t" ]] || continue
      lines+=("$k")
      fps+=("$(fingerprint "$k")")
    done < <(fact_values hostkey)
  done
  ((${#lines[@]})) || die "the server did not report its SSH host keys"

  local known_name=$host
  ((port == 22)) || known_name="[$host]:$port"
  local entry
  entry=$(printf '{"name": "%s", "host": "%s", "tenant": "%s"' "$name" "$host" "$tenant")
  [[ -n $region ]] && entry+=$(printf ', "region": "%s"' "$region")
  ((port == 22)) || entry+=$(printf ', "port": %s' "$port")
  [[ $remote_user == "$DEFAULT_USER" ]] || entry+=$(printf ', "user": "%s"' "$remote_user")
  [[ $remote_path == "/home/$DEFAULT_USER/$DEFAULT_PATH_NAME" ]] || entry+=$(printf ', "path": "%s"' "$remote_path")
  if ((${#fps[@]} == 1)); then
    entry+=$(printf ', "hostKey": "%s"}' "${fps[0]}")
  else
    entry+=', "hostKey": ['
    for k in "${!fps[@]}"; do
      ((k == 0)) || entry+=', '
      entry+="\"${fps[k]}\""
    done
    entry+=']}'
  fi

  say ""
  say "$host is ready for the deploy action."
  say ""
  say "1. Registry entry: add it to the \"servers\" list of your registry (e.g. .github/servers/production.json):"
  say ""
  say "  $entry"
  say ""
  say "2. known_hosts lines: add them to the SSH_KNOWN_HOSTS secret (the server's host keys, read over this login):"
  say ""
  for line in "${lines[@]}"; do say "  $known_name $line"; done
  say ""
  say "3. The SSH_PRIVATE_KEY secret holds the deploy key, the same for every server:"
  say ""
  say "  gh secret set SSH_PRIVATE_KEY < $key"
}

main() {
  parse_args "$@"
  trap cleanup EXIT
  connect
  local pubkey facts
  ensure_deploy_key
  provision
  print_result
}

main "$@"
