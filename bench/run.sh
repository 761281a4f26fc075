#!/usr/bin/env bash
# Benchmarks on the test rig: our bundled action against the tools operators would otherwise use
# (xargs + ssh, parallel-ssh, Ansible), on the same servers doing the same remote work. Prints
# medians and ratios as Markdown and writes them to bench/results/latest.md.
#
#   bash bench/run.sh [--quick] [--only=status,scale,deploy,downtime]
#
#   1. orchestration: `mode: status` vs the same commands via xargs -P N ssh, parallel-ssh -p N,
#      ansible -f N -m raw, on 10/20/50 sshd-only servers (read-only docker stand-in)
#   1b. `mode: status` on 10/20/50 sshd + dockerd servers vs the operator's own status one-liner
#      (issue 14) and a bare `docker ps` over xargs -P N ssh, and our commands over xargs
#   2. full deploy v1 -> v2 on 10 and 20 sshd + dockerd servers vs a bash script over xargs + ssh
#      and an Ansible playbook doing the same steps; 10 at max-parallel 10 vs the slowest alone
#   3. scale: `mode: status` on 1000 sshd-only servers at max-parallel 100 (wall, CPU, peak RSS)
#   4. downtime of one gateway during a deploy and a rollback vs the container restart itself
#
# --quick: one run of each, status on 10 and 20, deploy on 10.
# Environment: BENCH_REPS, BENCH_STATUS_SIZES, BENCH_DOCKER_STATUS_SIZES, BENCH_DEPLOY_SIZES,
# BENCH_SCALE, BENCH_SCALE_PARALLEL, BENCH_OUT (default
# bench/results/latest.md), BENCH_ACTION (the bundle to measure instead of dist/index.js),
# BENCH_VARIANTS="label=path/index.js,…" (more bundles measured beside ours in 1 and 3, e.g. patched
# copies), BENCH_SKIP="pssh,ansible,docker-status", BENCH_ACTION_NODE_ARGS (e.g. "--cpu-prof
# --cpu-prof-dir=/tmp/prof"), BENCH_NODE, RIG_DIR.
#
# Needs root. Installs what it lacks from Debian (pssh, ansible, time, the rig's packages) and
# Node 24 (the action's runtime) like CI does. Everything that touches the rig runs under
# `flock /tmp/openclaw-rig.lock` (other sessions' test runs wait, and this waits for theirs), and
# the rig is brought down at the end whatever happens. All traffic stays on this machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RIG=__tests__/rig/rig.sh
LOCK=/tmp/openclaw-rig.lock

if [[ ${1:-} == --locked ]]; then
  # (under the lock) the rig goes down at the end, also on failure, Ctrl-C or TERM
  shift
  # shellcheck disable=SC2317 # (run by the trap)
  cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n ${harness:-} ]] && kill -TERM "$harness" 2>/dev/null && wait "$harness" 2>/dev/null
    bash "$RIG" down >/dev/null 2>&1 || bash "$RIG" down || true
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  "$BENCH_NODE" bench/bench.mjs "$@" &
  harness=$!
  wait "$harness"
  exit
fi

[[ $(id -u) -eq 0 ]] || { echo "bench: must run as root (it brings up the test rig)" >&2; exit 1; }
log() { printf '[bench] %s\n' "$*" >&2; }

missing=()
command -v parallel-ssh >/dev/null || missing+=(pssh)
command -v ansible-playbook >/dev/null || missing+=(ansible)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v tsc >/dev/null || [[ -x node_modules/.bin/tsc ]] || { log "node_modules missing: run npm ci --ignore-scripts first"; exit 1; }
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash "$RIG" install >/dev/null

# The action's runtime (action.yml: node24), installed as for the tests
[[ -n ${BENCH_NODE:-} ]] || BENCH_NODE=$(bash scripts/dev/test-prereqs.sh node24)
export BENCH_NODE
[[ -f dist/index.js ]] || { log "dist/index.js missing: npm run package"; exit 1; }

log "waiting for the rig lock ($LOCK)"
exec flock "$LOCK" bash "${BASH_SOURCE[0]}" --locked "$@"
