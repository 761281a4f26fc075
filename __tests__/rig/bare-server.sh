#!/usr/bin/env bash
# A bare server for the operator kit's tests: a fresh Linux machine as a hosting provider hands it
# over. Root (and `admin`, a sudo user) log in with the operator's key, Docker runs, and there is no
# deploy user, no project and no deploy key: what scripts/deployment/setup-server.sh starts from.
# It sits beside the fleet of rig.sh (same bridge, local registry and guard route) and needs the rig up.
#
#   bare-server.sh install            install what the operator kit's tests need beyond the rig's
#                                     packages: sudo, cron and ufw for bare servers (their services
#                                     are not started here) and shellcheck for linting the kit
#   bare-server.sh up NAME            bring up bare server NAME (b1..b7, at 10.200.0.3..9)
#   bare-server.sh down NAME|all      stop it and remove everything it made (idempotent)
#   bare-server.sh exec NAME -- CMD   run CMD as root inside the server (its root, network, hostname)
#   bare-server.sh status NAME        exit 0 when it is up
#
# Its own root: an overlay of this machine's / whose writable layer is a tmpfs, mounted in a private
# mount namespace, with fresh /root, /home, /run and /tmp. So useradd, sshd_config, cron.d or ufw
# changes made on the server land in that tmpfs and never on this machine; the rig's own deploy user
# is removed from the server's view of /etc/passwd. Docker's data root is a folder under the rig dir
# (an overlay layer cannot hold overlay2 layers). Its sshd reads the distribution's sshd_config and
# its dockerd uses the default socket and the docker group, as on a real server.
#
# $RIG_DIR/bare/NAME/ holds: server.json (address, login keys), ssh_config (what the operator's ssh
# needs to reach it: admin key, known_hosts, strict host key checking), logs and pids.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
RIG_DIR=${RIG_DIR:-/tmp/openclaw-rig}
RIG_DIR=${RIG_DIR%/}
BRIDGE=ocrig0
SUBNET_PREFIX=10.200.0
REGISTRY=$SUBNET_PREFIX.1:5000
RUN_DIR=/run/ocrig
ADMIN='admin'
RIG_DEPLOY_USER=deploy
SERVER_PACKAGES=(sudo cron ufw) # what a bare server has beyond this machine's rig packages
PACKAGES=("${SERVER_PACKAGES[@]}" shellcheck)

log() { printf '[bare] %s\n' "$*" >&2; }
die() { printf '[bare] error: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

check_name() {
  [[ ${1:-} =~ ^b([1-7])$ ]] || die "not a bare server name: '${1:-}' (b1..b7)"
}
ip_of() { printf '%s.%s\n' "$SUBNET_PREFIX" "$((2 + ${1#b}))"; }
netns_of() { printf 'ocrig-%s\n' "$1"; } # the rig's `down` removes every ocrig-* namespace
veth_of() { printf 'ocv-%s\n' "$1"; }
dir_of() { printf '%s/bare/%s\n' "$RIG_DIR" "$1"; }

# pid files hold "PID STARTTIME" so a recycled PID is never mistaken for ours
starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  printf '%s\n' "${20}"
}
alive() {
  local pid start now
  [[ -s $1 ]] || return 1
  read -r pid start <"$1"
  now=$(starttime "$pid") || return 1
  [[ $now == "$start" ]]
}
record_pid() { printf '%s %s\n' "$2" "$(starttime "$2")" >"$1"; }
stop() { # stop PIDFILE TIMEOUT: TERM, then KILL; only the recorded process
  local pf=$1 timeout=$2 pid _s i
  if alive "$pf"; then
    read -r pid _s <"$pf"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do alive "$pf" || break; sleep 0.1; done
    if alive "$pf"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  fi
  rm -f "$pf"
}
holder_pid() { local pid _s; read -r pid _s <"$(dir_of "$1")/pids/holder"; printf '%s\n' "$pid"; }

# enter NAME CMD...: run CMD inside the server (mount, network and UTS namespaces, chrooted)
enter() {
  local name=$1 h
  shift
  h=$(holder_pid "$name")
  nsenter --target "$h" --mount --net --uts -- chroot "$(dir_of "$name")/mnt/root" \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

cmd_install() {
  need_root
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then log "packages present"; return 0; fi
  log "installing ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d made='' rc=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made=1; fi
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } || rc=$?
  [[ -n $made ]] && rm -f "$policy"
  ((rc == 0)) || die "apt-get install failed"
}

# The mount namespace's first process: builds the server's root, then holds the namespace open.
# Runs in the server's network namespace, in a new mount and UTS namespace.
holder() {
  local dir=$1 name=$2 r
  r=$dir/mnt/root
  hostname "bare-$name"
  # copies of the rig's mounts (containers of the other servers) would pin them: drop them here
  awk -v a="$RIG_DIR/" -v b="$RUN_DIR/" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  mount -t tmpfs -o size=1g,mode=755 "ocbare-$name" "$dir/mnt"
  mkdir -p "$dir/mnt/upper" "$dir/mnt/work" "$r"
  mount -t overlay "ocbare-$name-root" -o "lowerdir=/,upperdir=$dir/mnt/upper,workdir=$dir/mnt/work" "$r"
  mount -t proc proc "$r/proc"
  mount --rbind /sys "$r/sys"
  mount --make-rslave "$r/sys"
  mount --rbind /dev "$r/dev"
  mount --make-rslave "$r/dev"
  mount -t tmpfs -o mode=755 run "$r/run"
  mount -t tmpfs -o mode=1777 tmp "$r/tmp"
  mount -t tmpfs -o mode=755 home "$r/home"
  mount -t tmpfs -o mode=700 root "$r/root"
  mkdir -p "$r/var/lib/docker"
  mount --bind "$dir/docker" "$r/var/lib/docker"
  # exec keeps the PID and its start time: the pid file stays true for the sleep
  record_pid "$dir/pids/holder" "$$"
  exec sleep infinity
}

customize() { # what makes the overlay a fresh server: its own users, host keys and login keys
  local name=$1 dir
  dir=$(dir_of "$name")
  # the rig's deploy user lives in this machine's /etc/passwd, which the overlay shows: not here
  if enter "$name" getent passwd "$RIG_DEPLOY_USER" >/dev/null; then enter "$name" userdel -f "$RIG_DEPLOY_USER" 2>/dev/null; fi
  if enter "$name" getent group "$RIG_DEPLOY_USER" >/dev/null; then enter "$name" groupdel "$RIG_DEPLOY_USER"; fi
  if enter "$name" getent passwd "$ADMIN" >/dev/null; then enter "$name" userdel -f "$ADMIN" 2>/dev/null; fi
  enter "$name" sh -c "printf '127.0.1.1\tbare-$name\n' >> /etc/hosts"
  enter "$name" sh -c 'rm -f /etc/ssh/ssh_host_* /etc/cron.d/openclaw-* /etc/sudoers.d/90-openclaw-rig-admin &&
    ssh-keygen -A >/dev/null && mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh'
  enter "$name" sh -c 'cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' <"$dir/admin_ed25519.pub"
  # admin: a sudo user as many images have (ubuntu, debian, admin), with sudo without a password
  enter "$name" useradd --create-home --shell /bin/bash --groups sudo "$ADMIN"
  enter "$name" usermod -p '*' "$ADMIN"
  enter "$name" sh -c "printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' $ADMIN > /etc/sudoers.d/90-openclaw-rig-admin && chmod 440 /etc/sudoers.d/90-openclaw-rig-admin"
  enter "$name" sh -c "install -d -m 700 -o $ADMIN -g $ADMIN /home/$ADMIN/.ssh && cat > /home/$ADMIN/.ssh/authorized_keys && chown $ADMIN: /home/$ADMIN/.ssh/authorized_keys && chmod 600 /home/$ADMIN/.ssh/authorized_keys" \
    <"$dir/admin_ed25519.pub"
}

cmd_up() {
  need_root
  local name=${1:-}
  check_name "$name"
  [[ -f $RIG_DIR/fleet.json ]] || die "the rig is not up (rig.sh up N)"
  grep -q '"docker": true' "$RIG_DIR/fleet.json" || die "the rig runs without docker (--no-docker)"
  local p
  for p in "${SERVER_PACKAGES[@]}"; do command -v "$p" >/dev/null 2>&1 || die "$p is missing: run 'bare-server.sh install'"; done
  local dir ns veth ip t0=$SECONDS
  dir=$(dir_of "$name") ns=$(netns_of "$name") veth=$(veth_of "$name") ip=$(ip_of "$name")
  if [[ -e $dir ]] || ip netns list | grep -qw "$ns"; then die "$name is already up (or left over): bare-server.sh down $name"; fi
  trap 'rc=$?; if ((rc)); then log "up failed: tearing $name down"; cmd_down "$name" || true; fi' EXIT
  mkdir -p "$dir/pids" "$dir/mnt" "$dir/docker"

  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$BRIDGE" up
  printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "$ip" | ip -n "$ns" -batch -

  ssh-keygen -q -t ed25519 -N '' -C "operator of $name" -f "$dir/admin_ed25519"

  setsid nsenter --net="/run/netns/$ns" unshare --mount --uts --propagation private -- \
    bash "$SELF" _holder "$dir" "$name" </dev/null >>"$dir/holder.log" 2>&1 &
  local i
  for ((i = 0; i < 100; i++)); do alive "$dir/pids/holder" && break; sleep 0.1; done
  alive "$dir/pids/holder" || { cat "$dir/holder.log" >&2; die "$name: its root was not mounted"; }

  customize "$name"

  local h r=$dir/mnt/root
  h=$(holder_pid "$name")
  setsid nsenter --target "$h" --mount --net --uts -- chroot "$r" \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    dockerd --group docker --insecure-registry "$REGISTRY" --iptables=false --ip-forward=false --ip-masq=false \
    --shutdown-timeout 5 --log-level warn </dev/null >>"$dir/dockerd.log" 2>&1 &
  record_pid "$dir/pids/dockerd" $!
  setsid nsenter --target "$h" --mount --net --uts -- chroot "$r" \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /usr/sbin/sshd -D -e \
    </dev/null >>"$dir/sshd.log" 2>&1 &
  record_pid "$dir/pids/sshd" $!

  local end=$((SECONDS + 60))
  until enter "$name" docker info >/dev/null 2>&1; do
    if ((SECONDS >= end)) || ! alive "$dir/pids/dockerd"; then tail -n 20 "$dir/dockerd.log" >&2; die "$name: dockerd did not come up"; fi
    sleep 0.2
  done
  until timeout 2 bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; do
    if ((SECONDS >= end)) || ! alive "$dir/pids/sshd"; then tail -n 20 "$dir/sshd.log" >&2; die "$name: sshd not answering"; fi
    sleep 0.1
  done

  # shellcheck disable=SC2016
  enter "$name" sh -c 'for k in /etc/ssh/ssh_host_*_key.pub; do printf "%s %s\n" "$1" "$(cut -d" " -f1,2 "$k")"; done' sh "$ip" \
    >"$dir/known_hosts"
  cat >"$dir/ssh_config" <<EOF
# The operator's ssh settings for $name (written by bare-server.sh)
Host $ip
  IdentityFile $dir/admin_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  LogLevel ERROR
EOF
  cat >"$dir/server.json" <<EOF
{ "name": "$name", "host": "$ip", "port": 22, "admin": "$ADMIN", "adminKeyFile": "$dir/admin_ed25519",
  "knownHostsFile": "$dir/known_hosts", "sshConfigFile": "$dir/ssh_config", "dir": "$dir" }
EOF
  trap - EXIT
  log "$name up at $ip in $((SECONDS - t0))s"
}

cmd_down() {
  need_root
  local target=${1:-} name
  if [[ $target == all ]]; then
    for name in b1 b2 b3 b4 b5 b6 b7; do
      if [[ -e $(dir_of "$name") ]] || ip netns list 2>/dev/null | grep -qw "$(netns_of "$name")"; then cmd_down "$name"; fi
    done
    return 0
  fi
  check_name "$target"
  name=$target
  local dir ns pid
  dir=$(dir_of "$name") ns=$(netns_of "$name")
  if [[ -d $dir/pids ]]; then
    stop "$dir/pids/sshd" 10
    stop "$dir/pids/dockerd" 30
    stop "$dir/pids/holder" 10
  fi
  # whatever still runs in its network namespace (ssh sessions, container shims): exactly those PIDs
  if ip netns list 2>/dev/null | grep -qw "$ns"; then
    local left
    left=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $left ]]; then
      # shellcheck disable=SC2086
      kill -TERM $left 2>/dev/null || true
      sleep 1
      left=$(ip netns pids "$ns" 2>/dev/null || true)
      # shellcheck disable=SC2086
      [[ -z $left ]] || kill -KILL $left 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || log "could not delete netns $ns"
  fi
  ip link del "$(veth_of "$name")" 2>/dev/null || true
  # its mounts lived only in its own mount namespace, which ended with its last process
  rm -rf "$dir"
  rmdir "$RIG_DIR/bare" 2>/dev/null || true
  log "$name down"
}

cmd_exec() {
  need_root
  local name=${1:-}
  check_name "$name"
  shift
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "usage: bare-server.sh exec NAME -- CMD..."
  alive "$(dir_of "$name")/pids/holder" || die "$name is not up"
  enter "$name" "$@"
}

cmd_status() {
  local name=${1:-}
  check_name "$name"
  local dir
  dir=$(dir_of "$name")
  if ! alive "$dir/pids/holder" || ! alive "$dir/pids/sshd" || ! alive "$dir/pids/dockerd"; then echo "down"; return 1; fi
  echo "up: $(ip_of "$name")"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    exec) cmd_exec "$@" ;;
    status) cmd_status "$@" ;;
    _holder) holder "$@" ;;
    *) sed -n '2,14p' "$SELF" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
