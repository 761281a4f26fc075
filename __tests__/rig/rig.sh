#!/usr/bin/env bash
# End-to-end test rig: a fleet of "servers" on this machine, each one its own network namespace with
# its own OpenSSH sshd (as user `deploy`) and its own dockerd, plus a local image registry.
#
#   rig.sh install                 install the packages the rig needs (idempotent)
#   rig.sh up N [--no-docker]      bring up servers s1..sN (--no-docker: sshd only, for benchmarks;
#                                  N up to 240 with docker, 1000 without)
#   rig.sh down                    stop and remove everything the rig made (idempotent)
#   rig.sh status                  print whether the rig is up (exit 0 when up, 1 otherwise)
#   rig.sh exec NAME -- CMD...     run CMD as root inside server NAME (its netns and mount namespace,
#                                  cwd = its project folder, DOCKER_HOST = its daemon)
#   rig.sh cut NAME | mend NAME    take the server's link down / up
#   rig.sh blackhole NAME          take the link down so that packets vanish silently, as when a
#                                  link fails behind a router (`cut` fails fast: this machine's
#                                  ARP gives up and errors the sockets); `mend` undoes it
#   rig.sh registry stop|start     stop / start the local registries (the plain one and the private one)
#   rig.sh reset NAME|all          put server(s) back on the baseline (.env, v1 running and healthy)
#   rig.sh bastion up NAME...      a jump host (own namespace and sshd at 10.200.0.9) that becomes
#                                  the only way to reach those servers: this machine cannot; it
#                                  also serves them the registries; facts in $RIG_DIR/bastion.json
#   rig.sh bastion down            the servers back on the rig's bridge, the bastion gone
#   rig.sh bastion cut|mend        take the bastion's link to this machine down / up
#   rig.sh shape NAME upstream|simple   give the server's baseline project that shape (new .env
#                                  secrets), then reset it: upstream OpenClaw's (the default) or one
#                                  service on the host network
#   rig.sh pubkey-algorithms NAME LIST  restart the server's sshd accepting only these public key
#                                  algorithms (PubkeyAcceptedAlgorithms, e.g. ssh-ed25519); reset lifts it
#
# Environment: RIG_DIR (state, default /tmp/openclaw-rig), RIG_KEEP_ON_FAIL=1 (a failed `up` leaves
# the rig as it is for debugging instead of tearing it down), RIG_PARALLEL (servers provisioned at once).
#
# Safety: all traffic stays on this machine. The guard route `unreachable 10.200.0.0/16` is added
# before anything else and stays after `down`, the namespaces have no default route, and every image name starts with the
# local registry's address so dockerd never reaches out. Processes are ended only by recorded PID
# (or, in `down`, by the PIDs `ip netns pids` lists for the rig's own namespaces).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
RIG_DIR=${RIG_DIR:-/tmp/openclaw-rig}
RIG_DIR=${RIG_DIR%/}
RUN_DIR=/run/ocrig            # dockerd exec-roots (short paths: unix socket length limit)
BRIDGE=ocrig0
# `rig.sh bastion up NAME...`: those servers move to a bridge of their own, reached only through the
# bastion (its own namespace and sshd, on both bridges); this machine has no address there.
BEHIND=ocrig1
BASTION_IP=10.200.0.9
NET_PREFIX=10.200
SUBNET_PREFIX=$NET_PREFIX.0 # the first /24: this machine, the registries, the bastion, s1..s240
GUARD_NET=10.200.0.0/16
HOST_IP=$SUBNET_PREFIX.1
REGISTRY=$HOST_IP:5000
# a second registry, for private images: TLS with a CA of the rig's own (trusted by every server's
# dockerd through /etc/docker/certs.d) and a login (htpasswd)
AUTH_REGISTRY=$HOST_IP:5443
AUTH_USER=openclaw-rig
CERTS_D=/etc/docker/certs.d
DEPLOY_USER=deploy
USER_MARK=openclaw-rig        # GECOS of a deploy user the rig created
PROJECT=openclaw
HEALTH_PORT=18789
# Server sN is at 10.200.K.(11 + I) for N - 1 = 240 K + I: s1..s240 in 10.200.0.0/24 (.11-.250),
# s241..s480 in 10.200.1.0/24, and so on, all on the one bridge, where this machine also takes .1 of
# every further /24 a fleet needs. Past s240, sshd-only: those servers reach this machine's
# registries only through the first /24. MAX_SERVERS: a Linux bridge takes at most 1024 ports.
SERVERS_PER_NET=240
MAX_SERVERS=1000
# servers that also hold an ECDSA and an RSA host key (the others only ed25519): enough to test
# clients that must ask for a type other than the first, without RSA key generation slowing `up`
MULTI_KEY_SERVERS="s1 s2"
# run-time folders the rig's tools create when absent (removed by `down` if the rig made them)
RUN_LEFTOVERS="/run/netns /run/containerd /run/docker /run/mount"
export DOCKER_BUILDKIT=0      # no buildx plugin here: use the classic builder

PIDDIR=$RIG_DIR/pids
STATE=$RIG_DIR/state

log() { printf '[rig] %s\n' "$*" >&2; }
die() { printf '[rig] error: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

check_rig_dir() {
  [[ $RIG_DIR == /* ]] || die "RIG_DIR must be absolute: $RIG_DIR"
  [[ $RIG_DIR =~ ^[A-Za-z0-9._/-]+$ ]] || die "RIG_DIR may only hold [A-Za-z0-9._/-]: $RIG_DIR"
  case $RIG_DIR in /|/tmp|/run|/home|/root|/var|/usr|/etc) die "RIG_DIR is too broad: $RIG_DIR" ;; esac
}

# ---------------------------------------------------------------------------------------------
# helpers

server_index() { # s12 -> 12
  [[ $1 =~ ^s([0-9]+)$ ]] || die "not a server name: $1"
  printf '%s\n' "${BASH_REMATCH[1]}"
}
# ip_of N VAR: sets VAR to server sN's address (no fork: `up 1000` calls it per server several times)
ip_of() { printf -v "$2" '%s.%d.%d' "$NET_PREFIX" $((($1 - 1) / SERVERS_PER_NET)) $((11 + ($1 - 1) % SERVERS_PER_NET)); }
server_ip() {
  local ip
  ip_of "$(server_index "$1")" ip
  printf '%s\n' "$ip"
}
netns_of() { printf 'ocrig-%s\n' "$1"; }
veth_of() { printf 'ocv-%s\n' "$1"; }
sdir() { printf '%s/%s\n' "$RIG_DIR" "$1"; }
sock_of() { printf '%s/%s/docker.sock\n' "$RIG_DIR" "$1"; }
project_of() { printf '%s/%s/%s\n' "$RIG_DIR" "$1" "$PROJECT"; }

servers() { # the servers of the current rig, one per line
  [[ -f $STATE/servers ]] && cat "$STATE/servers"
  return 0
}
has_docker() { [[ -f $STATE/docker ]]; }

known_server() {
  grep -qx -- "$1" "$STATE/servers" 2>/dev/null || die "no such rig server: $1 (is the rig up?)"
}

starttime() { # field 22 of /proc/PID/stat (after the command name, which may hold spaces)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  printf '%s\n' "${20}"
}

# proc_alive PID: running (a zombie counts as gone: PID 1 may be slow to reap orphans)
proc_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# pid_alive PIDFILE: the recorded process is still the one we started, and running
pid_alive() {
  local pf=$1 pid start now
  [[ -s $pf ]] || return 1
  read -r pid start <"$pf" || true
  [[ -n ${pid:-} ]] || return 1
  now=$(starttime "$pid") || return 1
  [[ -z ${start:-} || $now == "$start" ]] || return 1
  proc_alive "$pid"
}

pid_of() { local pid _s; read -r pid _s <"$1"; printf '%s\n' "$pid"; }

# spawn_start NAME LOG CMD...: start CMD detached (own session, stdin /dev/null, output to LOG).
# The wrapper writes its own PID to $PIDDIR/NAME.new and then execs, so that PID is the daemon's
# whether or not setsid had to fork. spawn_record NAME... turns those into $PIDDIR/NAME files
# holding "PID STARTTIME" (the start time guards against a recycled PID).
spawn_start() {
  local name=$1 logf=$2
  shift 2
  local pf=$PIDDIR/$name
  rm -f "$pf" "$pf.new"
  # shellcheck disable=SC2016
  setsid bash -c 'echo "$$" >"$0.new"; exec "$@"' "$pf" "$@" </dev/null >>"$logf" 2>&1 &
}

spawn_record() {
  local name pf pid end=$((SECONDS + 20))
  for name in "$@"; do
    pf=$PIDDIR/$name
    until [[ -s $pf.new ]]; do
      ((SECONDS < end)) || die "could not start $name"
      sleep 0.02
    done
    pid=$(<"$pf.new")
    printf '%s %s\n' "$pid" "$(starttime "$pid" || echo 0)" >"$pf"
    rm -f "$pf.new"
  done
}

spawn() { # spawn NAME LOG CMD...: start and record one daemon
  spawn_start "$@"
  spawn_record "$1"
}

# stop_pids TIMEOUT PIDFILE...: TERM the recorded processes, wait up to TIMEOUT seconds for all,
# then KILL those left. Only the recorded processes (PID and start time must match).
stop_pids() {
  local timeout=$1 pf end
  shift
  local live=()
  for pf in "$@"; do
    if pid_alive "$pf"; then
      kill -TERM "$(pid_of "$pf")" 2>/dev/null || true
      live+=("$pf")
    fi
  done
  end=$((SECONDS + timeout))
  while ((${#live[@]})) && ((SECONDS < end)); do
    local still=()
    for pf in "${live[@]}"; do if pid_alive "$pf"; then still+=("$pf"); fi; done
    live=("${still[@]}")
    ((${#live[@]})) && sleep 0.1
  done
  for pf in "${live[@]}"; do
    if pid_alive "$pf"; then
      log "$(basename "$pf") ($(pid_of "$pf")) did not stop in ${timeout}s: KILL"
      kill -KILL "$(pid_of "$pf")" 2>/dev/null || true
    fi
  done
  for pf in "${live[@]}"; do
    for ((end = 0; end < 50; end++)); do pid_alive "$pf" || break; sleep 0.1; done
  done
  rm -f "$@"
}
stop_pid() { stop_pids "${2:-15}" "$1"; } # stop_pid PIDFILE [TIMEOUT]

# wait_until TIMEOUT DESCRIPTION CMD...: poll CMD until it succeeds, or fail after TIMEOUT seconds
wait_until() {
  local timeout=$1 what=$2 end
  shift 2
  end=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    sleep 0.1
  done
}

docker_ping() { curl -fsS --max-time 2 --unix-socket "$1" http://docker/_ping; }
tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
in_netns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }

sdocker() { # sdocker NAME ARGS...: the docker CLI against server NAME's daemon
  local name=$1
  shift
  DOCKER_HOST="unix://$(sock_of "$name")" docker "$@"
}

health_body() { # body of the server's /health as seen from inside its namespace
  in_netns "$(netns_of "$1")" curl -fsS --max-time 3 "http://127.0.0.1:$HEALTH_PORT/health"
}
health_is() { [[ $(health_body "$1" 2>/dev/null) == "$2" ]]; }

mounts_under() { # mount points under the given prefixes, deepest first
  local p
  for p in "$@"; do
    awk -v p="$p/" 'index($5, p) == 1 || $5 == substr(p, 1, length(p) - 1) { print $5 }' /proc/self/mountinfo
  done | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- | uniq
}

iptables_snapshot() {
  local t
  for t in iptables-save ip6tables-save; do
    if command -v "$t" >/dev/null 2>&1; then
      printf '## %s\n' "$t"
      "$t" 2>/dev/null | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]/[0:0]/' || true
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# install

apt_mirror() { # the Debian mirror the system's apt uses (deb822 .sources or one-line format)
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    m=$(awk '
      /^[Uu][Rr][Ii][Ss]:/ { u = $2 }
      /^[Ss]uites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-(security|updates|backports)$/) ok = 1 }
      /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0 }
      END { if (u != "" && ok) print u }' "$f" | head -n1)
    if [[ -n $m && $m != *security* ]]; then printf '%s\n' "$m"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i + 1) !~ /-(security|updates|backports)$/ && $i !~ /security/) { print $i; exit } break } }' "$f")
    if [[ -n $m ]]; then printf '%s\n' "$m"; return 0; fi
  done
  return 1
}

cmd_install() {
  need_root
  local pkgs=(openssh-server docker.io busybox-static docker-registry iproute2 curl util-linux debian-archive-keyring openssl apache2-utils)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # keep apt from starting the packages' system services (docker, containerd, ssh, registry)
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } || rc=$?
    [[ -n $made_policy ]] && rm -f "$policy"
    ((rc == 0)) || die "apt-get install failed"
  else
    log "packages present"
  fi

  local plugin=/usr/local/lib/docker/cli-plugins/docker-compose
  if [[ -x $plugin ]] && "$plugin" version >/dev/null 2>&1; then
    log "compose plugin present: $("$plugin" version --short 2>/dev/null || true)"
    return 0
  fi
  local mirror
  mirror=$(apt_mirror) || die "cannot find the Debian mirror in the system's apt sources"
  local tmp
  tmp=$(mktemp -d /tmp/ocrig-apt.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/sources" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
  cat >"$tmp/sources/trixie.sources" <<EOF
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local aptopts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$tmp/sources"
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1")
  log "fetching the trixie docker-compose package (mirror from the system's apt sources)"
  apt-get "${aptopts[@]}" -qq update >/dev/null || die "apt update for trixie failed"
  (cd "$tmp/deb" && apt-get "${aptopts[@]}" -qq download docker-compose >/dev/null) ||
    die "downloading docker-compose failed"
  local deb
  deb=$(find "$tmp/deb" -name 'docker-compose_*.deb' | head -n1)
  [[ -n $deb ]] || die "docker-compose .deb not found"
  dpkg-deb -x "$deb" "$tmp/x"
  install -D -m 755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin"
  log "compose plugin installed: $("$plugin" version --short 2>/dev/null || true)"
}

# ---------------------------------------------------------------------------------------------
# up

write_sshd_config() { # (no command substitutions in per-server paths: `up 200` runs them 200 times)
  local name=$1 dir=$RIG_DIR/$1 ip
  ip_of "${1#s}" ip
  {
    printf 'ListenAddress %s\nPort 22\n' "$ip"
    printf 'HostKey %s/ssh_host_ed25519_key\n' "$dir"
    if [[ " $MULTI_KEY_SERVERS " == *" $name "* ]]; then
      printf 'HostKey %s/ssh_host_ecdsa_key\nHostKey %s/ssh_host_rsa_key\n' "$dir" "$dir"
    fi
    printf 'PidFile %s/sshd.pid\n' "$dir"
    # the login user's own file, as on a real server (the deploy user's home is $dir/home, see start_sshd)
    printf 'AuthorizedKeysFile %%h/.ssh/authorized_keys\n'
    if [[ -f $dir/pubkey-algorithms ]]; then printf 'PubkeyAcceptedAlgorithms %s\n' "$(<"$dir/pubkey-algorithms")"; fi
    printf 'AllowUsers %s\n' "$DEPLOY_USER"
    printf '%s\n' 'PubkeyAuthentication yes' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
      'PermitRootLogin no' 'UsePAM no' 'StrictModes no' 'UseDNS no' 'PrintMotd no' 'PrintLastLog no' \
      'X11Forwarding no' 'LogLevel VERBOSE' 'Subsystem sftp internal-sftp'
    if has_docker; then printf 'SetEnv DOCKER_HOST=unix://%s/docker.sock\n' "$dir"; fi
  } >"$dir/sshd_config"
}

# sshd runs in the server's netns and in a private mount namespace where the deploy user's home is
# the server's own folder (servers share this machine's filesystem; homes must not be shared).
# Starts it only: spawn_record NAME.sshd records it.
start_sshd() {
  local name=$1 dir=$RIG_DIR/$1 home
  home=$(<"$STATE/home")
  # shellcheck disable=SC2016
  spawn_start "$name.sshd" "$dir/sshd.log" unshare --mount --propagation private -- bash -c '
    # drop copies of the rig'"'"'s own mounts (container rootfs, netns files) from this namespace
    awk -v a="$4/" -v b="$5/" "index(\$5, a) == 1 || index(\$5, b) == 1 { print \$5 }" /proc/self/mountinfo |
      sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    mount --bind "$1" "$2" || exit 1
    exec nsenter --net="$3" /usr/sbin/sshd -D -e -f "$6"
  ' sshd-wrapper "$dir/home" "$home" "/run/netns/ocrig-$name" "$RIG_DIR" "$RUN_DIR" "$dir/sshd_config"
}

start_dockerd() { # starts it only: spawn_record NAME.dockerd records it
  local name=$1 dir=$RIG_DIR/$1
  mkdir -p "$RUN_DIR/$name"
  [[ -f $dir/daemon.json ]] || printf '{}\n' >"$dir/daemon.json"
  rm -f "$dir/dockerd.pid"
  spawn_start "$name.dockerd" "$dir/dockerd.log" nsenter --net="/run/netns/$(netns_of "$name")" \
    dockerd --config-file "$dir/daemon.json" --data-root "$dir/docker" --exec-root "$RUN_DIR/$name" \
    -H "unix://$(sock_of "$name")" --pidfile "$dir/dockerd.pid" --group docker \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=true \
    --insecure-registry "$REGISTRY" --shutdown-timeout 5 --log-level warn \
    --containerd-namespace "ocrig-$name" --containerd-plugins-namespace "ocrig-$name-plugins"
}

start_registry() {
  spawn registry "$RIG_DIR/registry/registry.log" docker-registry serve "$RIG_DIR/registry/config.yml"
  wait_until 20 "the registry" curl -fsS --max-time 2 "http://$REGISTRY/v2/" || {
    tail -n 20 "$RIG_DIR/registry/registry.log" >&2 || true
    die "registry did not start"
  }
}

# registry_config DIR ADDRESS: a registry's config (its images under DIR/data, served on ADDRESS)
registry_config() {
  cat <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1/data
  delete:
    enabled: true
http:
  addr: $2
EOF
}

start_auth_registry() {
  spawn auth-registry "$RIG_DIR/auth-registry/registry.log" docker-registry serve "$RIG_DIR/auth-registry/config.yml"
  wait_until 20 "the private registry" curl -sS --max-time 2 --cacert "$RIG_DIR/auth-registry/ca.crt" -o /dev/null "https://$AUTH_REGISTRY/v2/" || {
    tail -n 20 "$RIG_DIR/auth-registry/registry.log" >&2 || true
    die "the private registry did not start"
  }
}

# The private registry's files: a CA and a certificate for its address, a random password for
# AUTH_USER (bcrypt, as the registry's htpasswd wants), its config; the servers' daemons trust the CA.
setup_auth_registry() {
  local d=$RIG_DIR/auth-registry password
  mkdir -p "$d/data" "$d/client"
  (
    cd "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=openclaw-rig CA" -days 7 -out ca.crt
    openssl ecparam -name prime256v1 -genkey -noout -out server.key
    openssl req -new -key server.key -subj "/CN=$HOST_IP" -out server.csr
    printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$HOST_IP" >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile server.ext -out server.crt
  ) >/dev/null 2>&1 || die "could not make the private registry's certificates"
  printf -v password '%08x%08x%08x%08x' "$SRANDOM" "$SRANDOM" "$SRANDOM" "$SRANDOM"
  (umask 077 && printf '%s' "$password" >"$d/password")
  htpasswd -Bbn "$AUTH_USER" "$password" >"$d/htpasswd" 2>/dev/null || die "htpasswd failed"
  registry_config "$d" "$AUTH_REGISTRY" >"$d/config.yml"
  cat >>"$d/config.yml" <<EOF
  tls:
    certificate: $d/server.crt
    key: $d/server.key
auth:
  htpasswd:
    realm: openclaw-rig
    path: $d/htpasswd
EOF
  # dockerd reads a registry's CA from /etc/docker/certs.d/<host:port>/ (one folder for every daemon
  # of this machine): made here, removed by `down`
  [[ -d /etc/docker ]] || { mkdir -p /etc/docker; touch "$STATE/etc-docker-created"; }
  [[ -d $CERTS_D ]] || { mkdir -p "$CERTS_D"; touch "$STATE/certs-d-created"; }
  mkdir -p "$CERTS_D/$AUTH_REGISTRY"
  cp "$d/ca.crt" "$CERTS_D/$AUTH_REGISTRY/ca.crt"
  touch "$STATE/certs-registry-created"
}

setup_deploy_user() {
  local home
  if ! getent passwd "$DEPLOY_USER" >/dev/null; then
    useradd --create-home --shell /bin/bash --comment "$USER_MARK" --groups docker "$DEPLOY_USER"
    touch "$STATE/user-created"
    log "created user $DEPLOY_USER"
  else
    if ! id -nG "$DEPLOY_USER" | tr ' ' '\n' | grep -qx docker; then
      usermod -aG docker "$DEPLOY_USER"
      touch "$STATE/user-added-to-docker"
    fi
  fi
  # sshd without PAM refuses a locked account ("!" password): make it key-only instead
  local pw
  pw=$(getent shadow "$DEPLOY_USER" | cut -d: -f2)
  if [[ $pw == '!'* ]]; then
    printf '%s\n' "$pw" >"$STATE/user-password"
    usermod -p '*' "$DEPLOY_USER"
  fi
  home=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
  [[ -d $home ]] || { mkdir -p "$home"; chown "$DEPLOY_USER:" "$home"; touch "$STATE/home-created"; }
  printf '%s\n' "$home" >"$STATE/home"
}

# The project every server runs: upstream OpenClaw's shape, from the operator kit's own compose file
# (the one setup-server.sh installs), so the rig tests what operators run.
UPSTREAM_COMPOSE=$(dirname "$SELF")/../../scripts/deployment/server/docker-compose.yml
# The simple shape of earlier rigs (one service on the host network, .env names the image with no
# default), kept for tests of projects that are not upstream's: `rig.sh shape NAME simple`.
# shellcheck disable=SC2016 # the compose file's own ${...} references
SIMPLE_COMPOSE_TEXT='# OpenClaw gateway (test rig, simple shape)
services:
  gateway:
    image: ${OPENCLAW_IMAGE}
    network_mode: host
    restart: unless-stopped
    command: ["node", "dist/index.js", "gateway"]
    environment:
      OPENCLAW_GATEWAY_TOKEN: ${OPENCLAW_GATEWAY_TOKEN}
'

# secret NAME: a fresh random credential (hex), distinct per server and per variable, so that tests
# can look for every one of them in every output
secret() { printf -v "$1" '%08x%08x%08x%08x' "$SRANDOM" "$SRANDOM" "$SRANDOM" "$SRANDOM"; }

# write_project NAME [upstream|simple]: the compose project of one server and its baseline copies
# (the folders exist; the caller chowns the project folder to deploy). The .env is the one upstream's
# docker-setup.sh writes, plus the provider credentials the seed's guide has operators add by hand.
# baseline/up-services lists what provisioning starts: docker-setup.sh starts only the gateway and
# leaves openclaw-cli stopped.
write_project() {
  local name=$1 shape=${2:-upstream} dir=$RIG_DIR/$1 proj=$RIG_DIR/$1/$PROJECT env f
  local token claude web cookie openai
  secret token; secret claude; secret web; secret cookie; secret openai
  if [[ $shape == simple ]]; then
    env="# OpenClaw gateway settings for $name (test rig)
OPENCLAW_IMAGE=$REGISTRY/$PROJECT:v1
OPENCLAW_GATEWAY_TOKEN=rig-$name-$token
OPENCLAW_LOG_LEVEL=info
"
    printf '%s' "$SIMPLE_COMPOSE_TEXT" >"$dir/baseline/docker-compose.yml"
    : >"$dir/baseline/up-services"
  else
    # bind mounts are resolved by dockerd in this machine's mount namespace: the config lives under
    # the server's own folder, which both namespaces see at the same path (on a real server: ~/.openclaw)
    env="OPENCLAW_CONFIG_DIR=$dir/home/.openclaw
OPENCLAW_WORKSPACE_DIR=$dir/home/.openclaw/workspace
OPENCLAW_GATEWAY_PORT=$HEALTH_PORT
OPENCLAW_BRIDGE_PORT=18790
OPENCLAW_GATEWAY_BIND=lan
OPENCLAW_GATEWAY_TOKEN=$token
OPENCLAW_IMAGE=$REGISTRY/$PROJECT:v1
OPENCLAW_EXTRA_MOUNTS=
OPENCLAW_HOME_VOLUME=
OPENCLAW_DOCKER_APT_PACKAGES=
# provider credentials, added by hand as the seed's guide says (test rig: random values)
CLAUDE_AI_SESSION_KEY=sk-ant-sid01-$claude
CLAUDE_WEB_SESSION_KEY=sk-ant-sid02-$web
CLAUDE_WEB_COOKIE=sessionKey=$cookie
OPENAI_API_KEY=sk-proj-$openai
"
    cp "$UPSTREAM_COMPOSE" "$dir/baseline/docker-compose.yml"
    printf 'openclaw-gateway\n' >"$dir/baseline/up-services"
    mkdir -p "$dir/home/.openclaw/workspace"
  fi
  printf '%s' "$env" >"$dir/baseline/.env"
  for f in docker-compose.yml .env; do cp "$dir/baseline/$f" "$proj/$f"; done
}

# The images every test deploys, shaped like upstream's (WORKDIR /app, user node = uid 1000, `node`
# on the PATH running dist/index.js), made of static busybox: `node` is a shell and dist/index.js a
# stand-in script (rig/openclaw-standin.sh). v1 and v2 are healthy (/health answers "v1" / "v2"),
# broken starts but has no /health (404), crash exits at start-up (a restart loop). private (/health
# answers "private") is only in the private registry, pushed with the rig's own login.
RIG_IMAGES="v1 v2 broken crash"
build_images() { # on s1's daemon; pushes every image of RIG_IMAGES, and private
  local ctx=$RIG_DIR/images a v
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/home"
  cp /bin/busybox "$ctx/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do
    [[ $a == busybox ]] || ln -s busybox "$ctx/rootfs/bin/$a"
  done
  printf '#!/bin/sh\n# node stand-in: runs the script it is given, as node would run dist/index.js\nexec /bin/sh "$@"\n' \
    >"$ctx/rootfs/usr/local/bin/node"
  chmod 755 "$ctx/rootfs/usr/local/bin/node"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' >"$ctx/rootfs/etc/group"
  chmod 1777 "$ctx/rootfs/tmp"
  for v in $RIG_IMAGES private; do
    mkdir -p "$ctx/app-$v/dist" "$ctx/app-$v/www"
    cp "$(dirname "$SELF")/openclaw-standin.sh" "$ctx/app-$v/dist/index.js"
    printf '%s\n' "$v" >"$ctx/app-$v/VERSION"
    case $v in
      broken) printf 'OpenClaw (broken build): no /health here\n' >"$ctx/app-$v/www/index.html" ;;
      *) printf '%s' "$v" >"$ctx/app-$v/www/health" ;;
    esac
  done
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
COPY --chown=1000:1000 home/ /home/node/
ARG VERSION
COPY app-${VERSION}/ /app/
LABEL org.opencontainers.image.title="openclaw-rig" org.opencontainers.image.version="${VERSION}"
ENV PATH=/usr/local/bin:/bin HOME=/home/node
WORKDIR /app
USER 1000:1000
CMD ["node", "dist/index.js"]
EOF
  local blog=$ctx/build.log pids=()
  for v in $RIG_IMAGES private; do
    sdocker s1 build -q --build-arg "VERSION=$v" -t "$REGISTRY/$PROJECT:$v" "$ctx" >>"$blog" 2>&1 || {
      cat "$blog" >&2
      die "docker build of $v failed"
    }
  done
  for v in $RIG_IMAGES; do
    sdocker s1 push -q "$REGISTRY/$PROJECT:$v" >>"$blog" 2>&1 &
    pids+=($!)
  done
  for v in "${pids[@]}"; do
    wait "$v" || { cat "$blog" >&2; die "docker push failed"; }
  done
  local tags
  tags=$(curl -fsS --max-time 5 "http://$REGISTRY/v2/$PROJECT/tags/list")
  for v in $RIG_IMAGES; do
    [[ $tags == *"\"$v\""* ]] || die "image $v not in the registry: $tags"
  done
  # the private image: into the private registry (the rig's login in its own DOCKER_CONFIG), and
  # off s1 again, so that s1 too has to pull it
  local private=$AUTH_REGISTRY/$PROJECT:private client=$RIG_DIR/auth-registry/client
  {
    sdocker s1 tag "$REGISTRY/$PROJECT:private" "$private" &&
      DOCKER_CONFIG=$client sdocker s1 login -u "$AUTH_USER" --password-stdin "$AUTH_REGISTRY" <"$RIG_DIR/auth-registry/password" &&
      DOCKER_CONFIG=$client sdocker s1 push -q "$private" &&
      DOCKER_CONFIG=$client sdocker s1 logout "$AUTH_REGISTRY" &&
      sdocker s1 rmi "$private" "$REGISTRY/$PROJECT:private"
  } >>"$blog" 2>&1 || { cat "$blog" >&2; die "pushing the private image failed"; }
}

# provision NAME: (runs in parallel, one process per server) wait for the daemon, start the
# project on v1, wait until healthy
cmd__provision() {
  local name=$1 proj
  proj=$(project_of "$name")
  wait_until 60 "$name's docker daemon" docker_ping "$(sock_of "$name")" || {
    tail -n 20 "$(sdir "$name")/dockerd.log" >&2 || true
    die "$name: dockerd did not come up"
  }
  local up=()
  mapfile -t up <"$(sdir "$name")/baseline/up-services"
  (cd "$proj" && sdocker "$name" compose up -d --quiet-pull "${up[@]}" >"$(sdir "$name")/compose.log" 2>&1) || {
    cat "$(sdir "$name")/compose.log" >&2 || true
    die "$name: docker compose up failed"
  }
  wait_until 60 "$name's health (v1)" health_is "$name" v1 || {
    sdocker "$name" ps -a >&2 || true
    die "$name: gateway not healthy"
  }
}

# fleet.json and known_hosts (no forks per server but one ssh-keygen call for all fingerprints).
# RIG_DIR holds only [A-Za-z0-9._/-]: nothing needs JSON escaping.
write_fleet() {
  local names=("$@") name first=1 ip kt key _rest i=0 j docker=false f
  local kh=$RIG_DIR/known_hosts fps=() types=() lines=() keys
  if has_docker; then docker=true; fi
  # every host key of every server, ed25519 first; types[] / lines[] say whose line is whose
  for name in "${names[@]}"; do
    for f in "$RIG_DIR/$name"/ssh_host_{ed25519,ecdsa,rsa}_key.pub; do
      [[ -f $f ]] || continue
      read -r kt key _rest <"$f"
      ip_of "${name#s}" ip
      printf '%s %s %s\n' "$ip" "$kt" "$key"
      types+=("$kt")
      lines+=("$name")
    done
  done >"$kh.new"
  mapfile -t fps < <(ssh-keygen -lf "$kh.new" | awk '{ print $2 }')
  ((${#fps[@]} == ${#lines[@]})) || die "could not read the host key fingerprints"
  {
    printf '{\n'
    printf '  "rigDir": "%s",\n' "$RIG_DIR"
    printf '  "registry": "%s",\n' "$REGISTRY"
    printf '  "docker": %s,\n' "$docker"
    if [[ $docker == true ]]; then
      printf '  "images": { "v1": "%s", "v2": "%s", "broken": "%s", "crash": "%s" },\n' \
        "$REGISTRY/$PROJECT:v1" "$REGISTRY/$PROJECT:v2" "$REGISTRY/$PROJECT:broken" "$REGISTRY/$PROJECT:crash"
    else
      printf '  "images": {},\n'
    fi
    if [[ $docker == true ]]; then
      printf '  "privateRegistry": { "address": "%s", "username": "%s", "passwordFile": "%s", "caFile": "%s", "image": "%s" },\n' \
        "$AUTH_REGISTRY" "$AUTH_USER" "$RIG_DIR/auth-registry/password" "$RIG_DIR/auth-registry/ca.crt" "$AUTH_REGISTRY/$PROJECT:private"
    fi
    printf '  "privateKeyFile": "%s",\n' "$RIG_DIR/keys/id_ed25519"
    printf '  "publicKeyFile": "%s",\n' "$RIG_DIR/keys/id_ed25519.pub"
    printf '  "knownHostsFile": "%s",\n' "$kh"
    printf '  "servers": [\n'
    for name in "${names[@]}"; do
      ip_of "${name#s}" ip
      ((first)) || printf ',\n'
      first=0
      # this server's lines follow each other in known_hosts, its ed25519 key first
      keys='' j=$i
      while ((j < ${#lines[@]})) && [[ ${lines[j]} == "$name" ]]; do
        keys+="${keys:+, }\"${types[j]}\": \"${fps[j]}\""
        j=$((j + 1))
      done
      printf '    { "name": "%s", "host": "%s", "port": 22, "user": "%s", "path": "%s", "hostKey": "%s", "hostKeys": { %s },' \
        "$name" "$ip" "$DEPLOY_USER" "$RIG_DIR/$name/$PROJECT" "${fps[i]}" "$keys"
      i=$j
      printf ' "netns": "ocrig-%s", "veth": "ocv-%s", "home": "%s", "baselineDir": "%s",' \
        "$name" "$name" "$RIG_DIR/$name/home" "$RIG_DIR/$name/baseline"
      if [[ $docker == true ]]; then
        printf ' "dockerHost": "unix://%s", "docker": true }' "$RIG_DIR/$name/docker.sock"
      else
        printf ' "dockerHost": null, "docker": false }'
      fi
    done
    printf '\n  ]\n}\n'
  } >"$RIG_DIR/fleet.json.new"
  mv "$kh.new" "$kh"
  mv "$RIG_DIR/fleet.json.new" "$RIG_DIR/fleet.json"
}

# The kernel's ARP table is one for all namespaces: every server holds an entry for this machine
# and this machine one per server, 2 N in all. Past gc_thresh3 (1024 by default) new connections
# fail ("neighbor table overflow"), so a big fleet raises the limits; `down` puts them back.
NEIGH_SYSCTL=/proc/sys/net/ipv4/neigh/default
raise_neigh_limits() {
  local need=$((2 * $1 + 512)) t3
  t3=$(<"$NEIGH_SYSCTL/gc_thresh3")
  ((t3 < need)) || return 0
  printf '%s %s\n' "$(<"$NEIGH_SYSCTL/gc_thresh2")" "$t3" >"$STATE/neigh-limits.before"
  echo "$need" >"$NEIGH_SYSCTL/gc_thresh3"
  echo "$need" >"$NEIGH_SYSCTL/gc_thresh2"
  log "ARP table limit raised from $t3 to $need entries for $1 servers (restored by down)"
}
restore_neigh_limits() {
  local t2 t3
  [[ -f $STATE/neigh-limits.before ]] || return 0
  read -r t2 t3 <"$STATE/neigh-limits.before"
  echo "$t2" >"$NEIGH_SYSCTL/gc_thresh2"
  echo "$t3" >"$NEIGH_SYSCTL/gc_thresh3"
}

# check_capacity N DOCKER: fail now, saying which limit, rather than half-way through `up` (or in
# a benchmark's timeout) when this machine cannot hold N servers. Measured here: `up 1000
# --no-docker` takes 2.1 GB (one sshd and its namespaces per server, 1 task each); `up 50`, 2.8 GB
# and 2,300 tasks (dockerd, containerd, a shim, docker-proxy and the gateway: 45 each). The
# allowances below leave room for what runs on them (pulls, ssh sessions, a benchmark's httpds).
check_capacity() {
  local n=$1 docker=$2 mem_kb tasks pid_max threads_max limit need_mem need_tasks
  mem_kb=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
  tasks=$(awk '{ split($4, a, "/"); print a[2] }' /proc/loadavg)
  pid_max=$(</proc/sys/kernel/pid_max)
  threads_max=$(</proc/sys/kernel/threads-max)
  limit=$((pid_max < threads_max ? pid_max : threads_max))
  if [[ -n $docker ]]; then
    need_mem=$((n * 150 * 1024 + 1024 * 1024)) need_tasks=$((n * 60 + 2000))
  else
    need_mem=$((n * 4 * 1024 + 512 * 1024)) need_tasks=$((n * 4 + 2000))
  fi
  ((mem_kb >= need_mem)) ||
    die "$n servers need about $((need_mem / 1024)) MB of memory; $((mem_kb / 1024)) MB available"
  ((limit - tasks >= need_tasks)) ||
    die "$n servers need about $need_tasks more processes/threads; $tasks running, limit $limit (kernel.pid_max $pid_max, kernel.threads-max $threads_max)"
}

cmd_up() {
  need_root
  check_rig_dir
  local n="" docker=1 arg
  for arg in "$@"; do
    case $arg in
      --no-docker) docker= ;;
      [0-9]*) n=$arg ;;
      *) die "usage: rig.sh up N [--no-docker]" ;;
    esac
  done
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > MAX_SERVERS)); then
    die "usage: rig.sh up N [--no-docker] (1 <= N <= $MAX_SERVERS)"
  fi
  if [[ -n $docker ]] && ((n > SERVERS_PER_NET)); then
    die "more than $SERVERS_PER_NET servers only without docker (rig.sh up $n --no-docker)"
  fi
  if [[ -e $RIG_DIR/fleet.json || -d $STATE ]] || ip link show "$BRIDGE" >/dev/null 2>&1; then
    die "a rig is already up (or left over): run 'rig.sh down' first"
  fi
  check_capacity "$n" "$docker"
  local t0=$SECONDS
  # 0. the guard route before anything else
  ip route replace unreachable "$GUARD_NET" metric 4000

  for arg in ip nsenter unshare setsid sshd ssh-keygen curl busybox; do
    command -v "$arg" >/dev/null 2>&1 || die "$arg is missing: run 'rig.sh install'"
  done
  if [[ -n $docker ]]; then
    for arg in dockerd docker docker-registry; do
      command -v "$arg" >/dev/null 2>&1 || die "$arg is missing: run 'rig.sh install'"
    done
    docker compose version >/dev/null 2>&1 || die "the docker compose plugin is missing: run 'rig.sh install'"
    if [[ -S /run/containerd/containerd.sock ]] &&
      curl -s --max-time 1 --unix-socket /run/containerd/containerd.sock http://x/ >/dev/null 2>&1; then
      die "a system containerd is running (/run/containerd/containerd.sock): each rig dockerd needs its own; stop it first"
    fi
  fi

  mkdir -p "$RIG_DIR" "$STATE" "$PIDDIR" "$RIG_DIR/keys"
  chmod 755 "$RIG_DIR"
  [[ -n $docker ]] && touch "$STATE/docker"
  iptables_snapshot >"$STATE/iptables.before"
  raise_neigh_limits "$n"
  if [[ ! -d /run/sshd ]]; then
    mkdir -m 755 /run/sshd
    touch "$STATE/run-sshd-created"
  fi
  [[ -f /etc/docker/key.json ]] || touch "$STATE/docker-key-absent"
  local d
  for d in $RUN_LEFTOVERS; do [[ -e $d ]] || printf '%s\n' "$d" >>"$STATE/run-dirs-created"; done

  trap 'up_failed' EXIT

  local names=() i
  for ((i = 1; i <= n; i++)); do names+=("s$i"); done
  printf '%s\n' "${names[@]}" >"$STATE/servers"

  # 1. network: bridge in the host namespace, one namespace + veth per server, no default route
  ip link add "$BRIDGE" type bridge forward_delay 0 stp_state 0
  ip addr add "$HOST_IP/24" dev "$BRIDGE"
  for ((i = 1; i <= (n - 1) / SERVERS_PER_NET; i++)); do ip addr add "$NET_PREFIX.$i.1/24" dev "$BRIDGE"; done
  ip link set "$BRIDGE" up
  for name in "${names[@]}"; do
    printf 'netns add ocrig-%s\n' "$name"
    printf 'link add ocv-%s type veth peer name eth0 netns ocrig-%s\n' "$name" "$name"
    printf 'link set ocv-%s master %s up\n' "$name" "$BRIDGE"
  done | ip -batch -
  local ip
  for name in "${names[@]}"; do
    ip_of "${name#s}" ip
    printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "$ip" | ip -n "ocrig-$name" -batch -
  done

  # 2. user, keys, per-server files (few forks per server: `up 200` runs this 200 times)
  setup_deploy_user
  ssh-keygen -q -t ed25519 -N '' -C "openclaw-rig client" -f "$RIG_DIR/keys/id_ed25519"
  local pub d dirs=()
  pub=$(<"$RIG_DIR/keys/id_ed25519.pub")
  for name in "${names[@]}"; do dirs+=("$RIG_DIR/$name/home/.ssh" "$RIG_DIR/$name/baseline" "$RIG_DIR/$name/$PROJECT"); done
  mkdir -p "${dirs[@]}"
  # RSA keys take seconds to generate: in the background, until the sshds start
  local keygens=() pid
  for name in $MULTI_KEY_SERVERS; do
    [[ -d $RIG_DIR/$name ]] || continue
    ssh-keygen -q -t ecdsa -b 256 -N '' -C "openclaw-rig $name" -f "$RIG_DIR/$name/ssh_host_ecdsa_key"
    ssh-keygen -q -t rsa -b 3072 -N '' -C "openclaw-rig $name" -f "$RIG_DIR/$name/ssh_host_rsa_key" &
    keygens+=($!)
  done
  for name in "${names[@]}"; do
    d=$RIG_DIR/$name
    ssh-keygen -q -t ed25519 -N '' -C "openclaw-rig $name" -f "$d/ssh_host_ed25519_key"
    printf '%s\n' "$pub" >"$d/home/.ssh/authorized_keys"
    printf '%s\n' "$pub" >"$d/baseline/authorized_keys"
    write_sshd_config "$name"
    write_project "$name"
  done
  dirs=()
  local sshdirs=() keyfiles=()
  for name in "${names[@]}"; do
    dirs+=("$RIG_DIR/$name/home" "$RIG_DIR/$name/$PROJECT")
    sshdirs+=("$RIG_DIR/$name/home/.ssh")
    keyfiles+=("$RIG_DIR/$name/home/.ssh/authorized_keys")
  done
  chown -R "$DEPLOY_USER:" "${dirs[@]}"
  chmod 700 "${sshdirs[@]}"
  chmod 600 "${keyfiles[@]}"

  # 3. daemons: dockerds first (sshd's mount namespace must not copy container mounts), then sshds
  if [[ -n $docker ]]; then
    mkdir -p "$RIG_DIR/registry/data"
    registry_config "$RIG_DIR/registry" "$REGISTRY" >"$RIG_DIR/registry/config.yml"
    start_registry
    setup_auth_registry
    start_auth_registry
    for name in "${names[@]}"; do start_dockerd "$name"; done
    spawn_record "${names[@]/%/.dockerd}"
  fi
  for pid in "${keygens[@]}"; do wait "$pid" || die "ssh-keygen of an RSA host key failed"; done
  for name in "${names[@]}"; do start_sshd "$name"; done
  spawn_record "${names[@]/%/.sshd}"

  # 4. images (on s1 while the other daemons start), then every server's project on v1
  if [[ -n $docker ]]; then
    wait_until 60 "s1's docker daemon" docker_ping "$(sock_of s1)" || {
      tail -n 20 "$(sdir s1)/dockerd.log" >&2 || true
      die "s1: dockerd did not come up"
    }
    log "building images on s1 ($((SECONDS - t0))s)"
    build_images
    log "starting the gateways ($((SECONDS - t0))s)"
    printf '%s\n' "${names[@]}" | xargs -P "${RIG_PARALLEL:-8}" -n 1 bash "$SELF" _provision ||
      die "provisioning failed"
  fi

  # 5. every sshd answers
  local end=$((SECONDS + 60))
  for name in "${names[@]}"; do
    ip_of "${name#s}" ip
    until tcp_open "$ip" 22; do
      if ((SECONDS >= end)) || ! pid_alive "$PIDDIR/$name.sshd"; then
        tail -n 20 "$RIG_DIR/$name/sshd.log" >&2 || true
        die "$name: sshd not answering"
      fi
      sleep 0.1
    done
  done

  write_fleet "${names[@]}"
  trap - EXIT
  log "up: ${#names[@]} servers$([[ -n $docker ]] || echo ' (no docker)') in $((SECONDS - t0))s; fleet: $RIG_DIR/fleet.json"
}

up_failed() {
  local rc=$?
  ((rc == 0)) && return 0
  if [[ ${RIG_KEEP_ON_FAIL:-} == 1 ]]; then
    log "up failed; RIG_KEEP_ON_FAIL=1: leaving the rig as it is (run 'rig.sh down' to clean up)"
  else
    log "up failed: tearing down"
    cmd_down || true
  fi
  exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# down

# end_netns_processes NS...: ends what still runs inside these network namespaces (ssh sessions
# whose client vanished, shims, containers): exactly the PIDs the kernel lists for them, TERM then KILL.
end_netns_processes() {
  local ns pid i left=()
  for ns in "$@"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do left+=("$pid"); done
  done
  ((${#left[@]})) || return 0
  log "ending ${#left[@]} leftover process(es) in the rig namespaces:" \
    "$(for pid in "${left[@]}"; do cat "/proc/$pid/comm" 2>/dev/null; done | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')"
  kill -TERM "${left[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    local alive=0
    for pid in "${left[@]}"; do if proc_alive "$pid"; then alive=1; fi; done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "${left[@]}" 2>/dev/null || true
}

cmd_down() {
  need_root
  check_rig_dir
  local name ns pf pid i

  # 1. the daemons we started, by recorded PID (dockerd stops its containers on TERM)
  if [[ -d $PIDDIR ]]; then
    shopt -s nullglob
    stop_pids 5 "$PIDDIR"/action-* # action runs (fleet.ts runAction) that outlived their test
    stop_pids 10 "$PIDDIR"/*.sshd
    stop_pids 25 "$PIDDIR"/*.dockerd
    stop_pids 10 "$PIDDIR"/*
    shopt -u nullglob
  fi

  # 2. whatever is still running inside the rig's namespaces (ssh sessions, shims, containers)
  # shellcheck disable=SC2046 # (namespace names are single words)
  end_netns_processes $(ip netns list 2>/dev/null | awk '$1 ~ /^ocrig-/ { print $1 }')

  # 3. mounts left under the rig's folders (dockerd leaves an nsfs mount under its exec-root)
  local m
  for m in $(mounts_under "$RIG_DIR" "$RUN_DIR"); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done

  # 4. network: namespaces (their veth ends go with them), veths, bridge (the guard route stays)
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^ocrig-/ { print $1 }'); do
    ip netns del "$ns" 2>/dev/null || log "could not delete netns $ns"
  done
  for m in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep -E '^ocv-s[0-9]+$' || true); do
    ip link del "$m" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
  if ip link show "$BEHIND" >/dev/null 2>&1; then ip link del "$BEHIND"; fi
  ip link del ocv-bastion 2>/dev/null || true
  ip link del ocb-bastion 2>/dev/null || true
  ip link del ocr-behind 2>/dev/null || true
  # The guard route stays on purpose: a test process that outlives the fleet (or a hand-typed ssh to
  # a server that is gone) must hit "unreachable" here, not the default route off the machine.
  ip route replace unreachable "$GUARD_NET" metric 4000

  restore_neigh_limits

  # 5. iptables: the daemons run with --iptables=false; restore the snapshot if anything changed
  if [[ -f $STATE/iptables.before ]]; then
    if ! diff -q "$STATE/iptables.before" <(iptables_snapshot) >/dev/null; then
      log "iptables changed while the rig was up: restoring"
      diff "$STATE/iptables.before" <(iptables_snapshot) >&2 || true
      awk '/^## /{ t = $2; next } t == "iptables-save" { print }' "$STATE/iptables.before" | iptables-restore || true
      if command -v ip6tables-restore >/dev/null 2>&1; then
        awk '/^## /{ t = $2; next } t == "ip6tables-save" { print }' "$STATE/iptables.before" | ip6tables-restore || true
      fi
    fi
  fi

  # 6. the deploy user (only if the rig created it), files the rig made outside its folders
  if getent passwd "$DEPLOY_USER" >/dev/null; then
    local gecos
    gecos=$(getent passwd "$DEPLOY_USER" | cut -d: -f5)
    if [[ -f $STATE/user-created || $gecos == "$USER_MARK" ]]; then
      userdel -r "$DEPLOY_USER" >/dev/null 2>&1 || userdel "$DEPLOY_USER" || log "could not remove user $DEPLOY_USER"
    else
      if [[ -f $STATE/user-added-to-docker ]]; then gpasswd -d "$DEPLOY_USER" docker >/dev/null 2>&1 || true; fi
      if [[ -f $STATE/user-password ]]; then usermod -p "$(<"$STATE/user-password")" "$DEPLOY_USER" || true; fi
      if [[ -f $STATE/home-created ]]; then rm -rf "$(<"$STATE/home")"; fi
    fi
  fi
  if [[ -f $STATE/docker-key-absent ]]; then rm -f /etc/docker/key.json; fi
  if [[ -f $STATE/certs-registry-created ]]; then rm -rf "${CERTS_D:?}/$AUTH_REGISTRY"; fi
  if [[ -f $STATE/certs-d-created ]]; then rmdir "$CERTS_D" 2>/dev/null || true; fi
  if [[ -f $STATE/etc-docker-created ]]; then rmdir /etc/docker 2>/dev/null || true; fi
  if [[ -f $STATE/run-sshd-created ]]; then rmdir /run/sshd 2>/dev/null || true; fi
  # run-time folders that dockerd, containerd, ip netns and mount made because the rig ran them
  local d
  while read -r d; do
    case $d in
      /run/netns)
        if [[ -d $d && -z $(ls -A "$d") ]]; then
          if mountpoint -q "$d"; then umount "$d" 2>/dev/null || umount -l "$d" || true; fi
          rmdir "$d" 2>/dev/null || true
        fi ;;
      /run/containerd) [[ -e $d/containerd.sock ]] || rm -rf "$d" ;;
      /run/docker) [[ -e $d/docker.sock || -e $d.sock ]] || rm -rf "$d" ;;
      /run/mount) rmdir "$d" 2>/dev/null || true ;;
    esac
  done < <(cat "$STATE/run-dirs-created" 2>/dev/null || true)

  # 7. the folders
  if [[ -n $(mounts_under "$RIG_DIR" "$RUN_DIR") ]]; then
    log "mounts still present under $RIG_DIR or $RUN_DIR: not removing them"
    mounts_under "$RIG_DIR" "$RUN_DIR" >&2
    return 1
  fi
  rm -rf "$RUN_DIR" "$RIG_DIR"
  log "down"
}

# ---------------------------------------------------------------------------------------------
# status, exec, cut/mend, registry, reset

cmd_status() {
  check_rig_dir
  if [[ ! -f $RIG_DIR/fleet.json ]]; then
    if [[ -d $STATE ]] || ip link show "$BRIDGE" >/dev/null 2>&1; then
      echo "partial: a rig was left over; run 'rig.sh down'"
    else
      echo "down"
    fi
    return 1
  fi
  local n dead=() pf
  n=$(servers | wc -l)
  for pf in "$PIDDIR"/*; do
    [[ -e $pf ]] || continue
    pid_alive "$pf" || dead+=("$(basename "$pf")")
  done
  if ((${#dead[@]})); then
    echo "degraded: $n servers; not running: ${dead[*]}"
    return 1
  fi
  echo "up: $n servers$(has_docker || echo ' (no docker)'); fleet: $RIG_DIR/fleet.json"
}

cmd_exec() {
  need_root
  local name=${1:-}
  [[ -n $name ]] || die "usage: rig.sh exec NAME -- CMD..."
  shift
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "usage: rig.sh exec NAME -- CMD..."
  known_server "$name"
  local enter=(nsenter --net="/run/netns/$(netns_of "$name")")
  local pf=$PIDDIR/$name.sshd
  if pid_alive "$pf"; then enter+=(--mount="/proc/$(pid_of "$pf")/ns/mnt"); fi
  local envs=(HOME=/root)
  has_docker && envs+=(DOCKER_HOST="unix://$(sock_of "$name")")
  # (env -C, not nsenter --wd: a directory opened before entering the mount namespace is unreachable)
  exec "${enter[@]}" env -C "$(project_of "$name")" "${envs[@]}" "$@"
}

cmd_link() { # cut|mend|blackhole NAME
  need_root
  local state=$1 name=${2:-} ip mac
  [[ -n $name ]] || die "usage: rig.sh cut|mend|blackhole NAME"
  known_server "$name"
  ip=$(server_ip "$name")
  if [[ $state == blackhole ]]; then
    # a permanent neighbour entry: the kernel never finds the server gone, it just gets no answers
    mac=$(ip -n "$(netns_of "$name")" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    [[ -n $mac ]] || die "$name: cannot read its MAC address"
    ip neigh replace "$ip" lladdr "$mac" dev "$BRIDGE" nud permanent
    state=down
  elif [[ $state == up ]]; then
    ip neigh del "$ip" dev "$BRIDGE" 2>/dev/null || true # a blackhole's pinned entry (or a learnt one)
  fi
  ip link set "$(veth_of "$name")" "$state"
}

cmd_registry() {
  need_root
  has_docker || die "this rig has no registry (--no-docker)"
  case ${1:-} in
    stop) stop_pids 10 "$PIDDIR/registry" "$PIDDIR/auth-registry" ;;
    start)
      pid_alive "$PIDDIR/registry" || start_registry
      pid_alive "$PIDDIR/auth-registry" || start_auth_registry
      ;;
    *) die "usage: rig.sh registry stop|start" ;;
  esac
}

# reset one server (runs in parallel, one process per server)
cmd__reset() {
  local name=$1 dir proj f
  dir=$(sdir "$name")
  proj=$(project_of "$name")
  ip neigh del "$(server_ip "$name")" dev "$BRIDGE" 2>/dev/null || true # after `blackhole`
  ip link set "$(veth_of "$name")" up
  if has_docker && ! pid_alive "$PIDDIR/$name.dockerd"; then
    log "$name: dockerd is not running: restarting it"
    start_dockerd "$name"
    spawn_record "$name.dockerd"
  fi
  if [[ -f $dir/pubkey-algorithms ]]; then # (rig.sh pubkey-algorithms)
    rm -f "$dir/pubkey-algorithms"
    write_sshd_config "$name"
    stop_pid "$PIDDIR/$name.sshd" 10
  fi
  if ! pid_alive "$PIDDIR/$name.sshd"; then
    log "$name: sshd is not running: restarting it"
    start_sshd "$name"
    spawn_record "$name.sshd"
  fi
  # the login user's ~/.ssh: only the baseline authorized_keys (a test may have rotated the key)
  rm -rf "$dir/home/.ssh"
  mkdir -m 700 "$dir/home/.ssh"
  cp "$dir/baseline/authorized_keys" "$dir/home/.ssh/authorized_keys"
  chmod 600 "$dir/home/.ssh/authorized_keys"
  chown -R "$DEPLOY_USER:" "$dir/home/.ssh"
  # the project folder: only the baseline files, with their original bytes
  find "$proj" -mindepth 1 -maxdepth 1 ! -name docker-compose.yml ! -name .env -exec rm -rf {} +
  rm -f "$proj/.env" # a test may have made it a link
  cp "$dir/baseline/docker-compose.yml" "$dir/baseline/.env" "$proj/"
  chown -R "$DEPLOY_USER:" "$proj"
  rm -rf "$dir/home/.openclaw-deploy"
  if has_docker; then
    wait_until 60 "$name's docker daemon" docker_ping "$(sock_of "$name")" || die "$name: dockerd not answering"
    local up=()
    mapfile -t up <"$dir/baseline/up-services"
    if ! (cd "$proj" && sdocker "$name" compose up -d --remove-orphans --quiet-pull "${up[@]}" >"$dir/compose.log" 2>&1); then
      cat "$dir/compose.log" >&2
      die "$name: docker compose up failed"
    fi
    wait_until 60 "$name's health (v1)" health_is "$name" v1 || die "$name: not healthy after reset"
    # other containers and image tags a test left behind
    local ids keep
    keep=$(cd "$proj" && sdocker "$name" compose ps -q "${up[@]}" 2>/dev/null | sort)
    ids=$(sdocker "$name" ps -aq --no-trunc | sort)
    for f in $ids; do
      grep -q "^${f:0:12}" <<<"$keep" || sdocker "$name" rm -f "$f" >/dev/null 2>&1 || true
    done
    for f in $(sdocker "$name" images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' || true); do
      [[ $f == "$REGISTRY/$PROJECT:v1" ]] || sdocker "$name" rmi "$f" >/dev/null 2>&1 || true
    done
  fi
  wait_sshd "$name"
}

wait_sshd() { # wait_sshd NAME: until the server's sshd answers (through the bastion when it is behind it)
  local name=$1
  if grep -qx -- "$name" "$RIG_DIR/bastion/servers" 2>/dev/null; then # (this machine cannot reach it)
    wait_until 20 "$name's sshd" in_netns ocrig-bastion timeout 2 bash -c "exec 3<>/dev/tcp/$(server_ip "$name")/22" || die "$name: sshd not answering"
  else
    wait_until 20 "$name's sshd" tcp_open "$(server_ip "$name")" 22 || die "$name: sshd not answering"
  fi
}

# pubkey-algorithms NAME LIST: the server's sshd accepts only these public key algorithms (a server
# whose operator allows only some key types); its sshd restarts with them. `reset` lifts it.
cmd_pubkey_algorithms() {
  need_root
  local name=${1:-} list=${2:-}
  [[ -n $name && $list =~ ^[a-z0-9@.,+-]+$ ]] || die "usage: rig.sh pubkey-algorithms NAME LIST (e.g. ssh-ed25519)"
  [[ -f $RIG_DIR/fleet.json ]] || die "the rig is not up"
  known_server "$name"
  printf '%s\n' "$list" >"$(sdir "$name")/pubkey-algorithms"
  write_sshd_config "$name"
  stop_pid "$PIDDIR/$name.sshd" 10
  start_sshd "$name"
  spawn_record "$name.sshd"
  wait_sshd "$name"
}

cmd_reset() {
  need_root
  local target=${1:-}
  [[ -n $target ]] || die "usage: rig.sh reset NAME|all"
  [[ -f $RIG_DIR/fleet.json ]] || die "the rig is not up"
  if has_docker && ! pid_alive "$PIDDIR/registry"; then start_registry; fi
  if has_docker && ! pid_alive "$PIDDIR/auth-registry"; then start_auth_registry; fi
  if [[ $target == all ]]; then
    servers | xargs -P "${RIG_PARALLEL:-8}" -n 1 bash "$SELF" _reset || die "reset failed"
  else
    known_server "$target"
    cmd__reset "$target"
  fi
}

# The bastion: namespace ocrig-bastion with eth0 on the rig's bridge (BASTION_IP) and eth1 on BEHIND,
# where the hidden servers' links go. It reaches each of them by a host route through eth1 (they
# keep their addresses; this machine's route to them leads into its bridge, where they no longer
# are). Their registries: a namespace of its own on BEHIND (ocrig-behind) that is 10.200.0.1 to them,
# serving the same storage as this machine's, so their pulls work while this machine stays out of
# reach (it answers no ARP on BEHIND: arp_ignore).
cmd_bastion() {
  need_root
  [[ -f $RIG_DIR/fleet.json ]] || die "the rig is not up"
  local action=${1:-} dir=$RIG_DIR/bastion name
  (($#)) && shift
  case $action in
    up)
      (($#)) || die "usage: rig.sh bastion up NAME..."
      [[ ! -e $dir/bastion.json ]] || die "the bastion is up already: rig.sh bastion down first"
      for name in "$@"; do
        known_server "$name"
        # (the bastion and the servers' registries behind it are in the first /24 only)
        (($(server_index "$name") <= SERVERS_PER_NET)) || die "$name: only s1..s$SERVERS_PER_NET can go behind the bastion"
      done
      mkdir -p "$dir"
      ip link add "$BEHIND" type bridge forward_delay 0 stp_state 0
      ip link set "$BEHIND" up
      ip netns add ocrig-bastion
      ip link add ocv-bastion type veth peer name eth0 netns ocrig-bastion
      ip link add ocb-bastion type veth peer name eth1 netns ocrig-bastion
      ip link set ocv-bastion master "$BRIDGE" up
      ip link set ocb-bastion master "$BEHIND" up
      sysctl -qw "net.ipv4.conf.$BEHIND.arp_ignore=1"
      printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\nlink set eth1 up\n' "$BASTION_IP" | ip -n ocrig-bastion -batch -
      ip netns add ocrig-behind
      ip link add ocr-behind type veth peer name eth0 netns ocrig-behind
      ip link set ocr-behind master "$BEHIND" up
      printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "$HOST_IP" | ip -n ocrig-behind -batch -
      for name in "$@"; do
        ip link set "$(veth_of "$name")" nomaster
        ip link set "$(veth_of "$name")" master "$BEHIND" up
        ip -n ocrig-bastion route add "$(server_ip "$name")/32" dev eth1
        # what the server knew of 10.200.0.1's link address is this machine's bridge: forget it
        ip -n "$(netns_of "$name")" neigh flush all
        ip neigh del "$(server_ip "$name")" dev "$BRIDGE" 2>/dev/null || true
        printf '%s\n' "$name" >>"$dir/servers"
      done
      ssh-keygen -q -t ed25519 -N '' -C "openclaw-rig bastion" -f "$dir/ssh_host_ed25519_key"
      cp "$RIG_DIR/keys/id_ed25519.pub" "$dir/authorized_keys"
      printf '%s\n' "ListenAddress $BASTION_IP" "HostKey $dir/ssh_host_ed25519_key" "PidFile $dir/sshd.pid" \
        "AuthorizedKeysFile $dir/authorized_keys" "AllowUsers $DEPLOY_USER" 'AllowTcpForwarding yes' 'PermitTTY no' \
        'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'UsePAM no' 'StrictModes no' 'UseDNS no' \
        'LogLevel VERBOSE' >"$dir/sshd_config"
      spawn bastion.sshd "$dir/sshd.log" nsenter --net=/run/netns/ocrig-bastion /usr/sbin/sshd -D -e -f "$dir/sshd_config"
      # the registries, as the hidden servers see them (the same storage as this machine's)
      spawn bastion.registry "$dir/registry.log" nsenter --net=/run/netns/ocrig-behind docker-registry serve "$RIG_DIR/registry/config.yml"
      spawn bastion.auth-registry "$dir/auth-registry.log" nsenter --net=/run/netns/ocrig-behind docker-registry serve "$RIG_DIR/auth-registry/config.yml"
      wait_until 20 "the bastion's sshd" tcp_open "$BASTION_IP" 22 || { tail -n 20 "$dir/sshd.log" >&2; die "the bastion's sshd did not start"; }
      local fp
      fp=$(ssh-keygen -lf "$dir/ssh_host_ed25519_key.pub" | awk '{ print $2 }')
      printf '%s %s\n' "$BASTION_IP" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
      printf '{ "host": "%s", "port": 22, "user": "%s", "hostKey": "%s", "knownHostsFile": "%s", "servers": [%s] }\n' \
        "$BASTION_IP" "$DEPLOY_USER" "$fp" "$dir/known_hosts" "$(sed 's/.*/"&"/' "$dir/servers" | paste -sd,)" >"$dir/bastion.json"
      log "bastion up at $BASTION_IP: the only way to $*"
      ;;
    down)
      stop_pids 10 "$PIDDIR"/bastion.*
      # (a session of the bastion's sshd whose client vanished, e.g. after `bastion cut`, outlives it)
      end_netns_processes ocrig-bastion ocrig-behind
      if [[ -f $dir/servers ]]; then
        while read -r name; do
          ip link set "$(veth_of "$name")" nomaster 2>/dev/null || true
          ip link set "$(veth_of "$name")" master "$BRIDGE" up 2>/dev/null || true
          ip -n "$(netns_of "$name")" neigh flush all 2>/dev/null || true
        done <"$dir/servers"
      fi
      ip netns del ocrig-bastion 2>/dev/null || true
      ip netns del ocrig-behind 2>/dev/null || true
      ip link del ocv-bastion 2>/dev/null || true
      ip link del ocr-behind 2>/dev/null || true
      ip link del ocb-bastion 2>/dev/null || true
      if ip link show "$BEHIND" >/dev/null 2>&1; then ip link del "$BEHIND"; fi
      rm -rf "$dir"
      ;;
    cut) ip link set ocv-bastion down ;;
    mend) ip link set ocv-bastion up ;;
    *) die "usage: rig.sh bastion up NAME... | down | cut | mend" ;;
  esac
}

cmd_shape() { # shape NAME upstream|simple: the server's baseline project becomes that shape, then reset
  need_root
  local name=${1:-} shape=${2:-}
  [[ -n $name && ($shape == upstream || $shape == simple) ]] || die "usage: rig.sh shape NAME upstream|simple"
  [[ -f $RIG_DIR/fleet.json ]] || die "the rig is not up"
  known_server "$name"
  write_project "$name" "$shape"
  cmd__reset "$name"
}

usage() {
  sed -n '2,30p' "$SELF" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    install) cmd_install "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    exec) cmd_exec "$@" ;;
    cut) cmd_link down "$@" ;;
    mend) cmd_link up "$@" ;;
    blackhole) cmd_link blackhole "$@" ;;
    registry) cmd_registry "$@" ;;
    reset) cmd_reset "$@" ;;
    shape) cmd_shape "$@" ;;
    pubkey-algorithms) cmd_pubkey_algorithms "$@" ;;
    bastion) cmd_bastion "$@" ;;
    _provision) cmd__provision "$@" ;;
    _reset) cmd__reset "$@" ;;
    -h | --help | help | "") usage ;;
    *) die "unknown command: $cmd (try rig.sh help)" ;;
  esac
}

main "$@"
