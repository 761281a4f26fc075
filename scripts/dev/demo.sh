#!/usr/bin/env bash
# npm run demo: a guided tour of the action on a small fleet of this machine's own (network
# namespaces, each with its own sshd and dockerd running upstream OpenClaw's Compose project; a local
# image registry). It runs the bundled action (dist/index.js) the way a workflow step does, four
# times, and after each says what it showed and what a workflow would do with its exit code; each
# step's job summary is shown as a person reads it on the run's page. It leaves nothing behind
# (DEMO_SUMMARIES=DIR: but the summaries' Markdown, there).
# Needs root (namespaces, daemons); installs the fleet's packages on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
RIG=__tests__/rig/rig.sh
SERVERS=${DEMO_SERVERS:-3}
export RIG_DIR=${RIG_DIR:-/tmp/openclaw-rig}

[ "$(id -u)" -eq 0 ] || { echo "npm run demo needs root: it creates network namespaces and starts sshd and dockerd." >&2; exit 1; }
[ -f dist/index.js ] || { echo "dist/index.js is missing: run 'npm ci --ignore-scripts && npm run package' first." >&2; exit 1; }

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' D=$'\033[2m' N=$'\033[0m'
  export DEMO_COLOR=1 # demo-view.mjs writes into a pipe, so it is told
else
  B='' G='' R='' D='' N=''
  export DEMO_COLOR=0
fi
say() { printf '%s\n' "$@"; } # one line per argument

work=$(mktemp -d /tmp/openclaw-demo.XXXXXX)
cleanup() {
  local rc=$?
  say "" "${D}Tearing the demo fleet down.${N}"
  bash "$RIG" down >/dev/null 2>&1 || bash "$RIG" down || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
if [ "$(bash "$RIG" status 2>/dev/null || true)" != down ]; then
  say "A test fleet from an earlier run is still there; removing it first."
  bash "$RIG" down >/dev/null
fi
bash "$RIG" install >/dev/null
say "${B}Bringing up $SERVERS servers${N} (each a network namespace with its own sshd and dockerd, running"
say "upstream OpenClaw's project: openclaw-gateway on v1, openclaw-cli stopped, as docker-setup.sh leaves it)."
bash "$RIG" up "$SERVERS" 2>&1 | sed -n 's/^\[rig\] up: /  up: /p'

fleet() { node -e 'const f = JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8")); console.log(process.argv[2].split(".").reduce((o, k) => o[k], f))' "$RIG_DIR" "$1"; }
# The registry: two tenants, the servers' real host keys.
node -e '
  const fleet = JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8"));
  const servers = fleet.servers.map((s, i) => ({ name: s.name, host: s.host, tenant: i % 2 ? "globex" : "acme",
    region: "rig", port: s.port, user: s.user, path: s.path, hostKey: s.hostKey }));
  process.stdout.write(JSON.stringify({ servers }, null, 2));
' "$RIG_DIR" >"$work/servers.json"

steps=0 recap=()
# What a push to main would give the runner: this checkout's commit and an actor.
commit=$(git rev-parse HEAD 2>/dev/null || echo 0000000000000000000000000000000000000000)
# step TITLE WHAT-IT-SHOWS EXPECTED-EXIT INPUT=VALUE...: runs dist/index.js with the inputs passed as
# the runner passes them (INPUT_<NAME>), shows its log and its summary, and says what the exit code
# means for a workflow.
step() {
  local title=$1 shows=$2 expected=$3 rc=0
  shift 3
  steps=$((steps + 1))
  : >"$work/summary.md"
  : >"$work/output"
  say "" "${B}── Step $steps: $title ──${N}" "$shows" ""
  env "INPUT_SERVERS-FILE=$work/servers.json" "INPUT_SSH-PRIVATE-KEY=$(cat "$(fleet privateKeyFile)")" \
    "INPUT_KNOWN-HOSTS=$(cat "$(fleet knownHostsFile)")" "INPUT_MAX-PARALLEL=10" "INPUT_HEALTH-TIMEOUT=10" \
    GITHUB_OUTPUT="$work/output" GITHUB_STEP_SUMMARY="$work/summary.md" GITHUB_REPOSITORY=acme/demo \
    GITHUB_RUN_ID=$((1000 + steps)) GITHUB_SERVER_URL=https://github.com GITHUB_EVENT_NAME=workflow_dispatch \
    GITHUB_SHA="$commit" GITHUB_ACTOR=demo-operator GITHUB_WORKFLOW=deploy RUNNER_TEMP="$work" \
    "$@" node dist/index.js >"$work/log" 2>&1 || rc=$?
  say "${D}The step's log (each server's log group folded to its title, progress lines left out):${N}"
  node scripts/dev/demo-view.mjs log "$work/log" | sed 's/^/  /'
  if [ -s "$work/summary.md" ]; then
    say "" "${D}The job summary, as the run's page shows it:${N}"
    node scripts/dev/demo-view.mjs summary "$work/summary.md" | sed 's/^/  /'
    # (DEMO_SUMMARIES=DIR keeps each step's Markdown, e.g. for scripts/dev/summary-screenshot.mjs)
    if [ -n "${DEMO_SUMMARIES:-}" ]; then mkdir -p "$DEMO_SUMMARIES" && cp "$work/summary.md" "$DEMO_SUMMARIES/step-$steps.md"; fi
  fi
  if [ "$rc" -ne "$expected" ]; then
    say "" "${R}exit code $rc, where the demo expected $expected: something is wrong (the log above says what).${N}"
    exit 1
  elif [ "$rc" -eq 0 ]; then
    say "" "→ ${G}exit code 0${N}: the workflow goes on to its next step."
  else
    say "" "→ ${R}exit code $rc${N}: this step fails the workflow, as it should."
  fi
  recap+=("$steps. $title: exit code $rc")
}

step "dry run" \
  "The plan, with the first server as a canary: the registry is checked, no server is contacted." \
  0 "INPUT_DRY-RUN=true" "INPUT_IMAGE=$(fleet images.v2)" INPUT_CANARY=1
step "deploy v2 to every server" \
  "The first server goes first (canary); the others start only once it is healthy. Each server is locked, keeps v1 for rollback, pulls v2, restarts only its running gateway, and is health-checked." \
  0 "INPUT_IMAGE=$(fleet images.v2)" INPUT_CANARY=1
step "deploy a broken image to acme" \
  "The new image starts but has no /health: on every acme server the health check fails and the action puts v2 back, .env byte for byte, and checks it is healthy again (rolled-back). globex is not touched." \
  1 "INPUT_IMAGE=$(fleet images.broken)" INPUT_TENANTS=acme
step "status of the fleet" \
  "Read-only: what runs where, whether it is healthy, and each server's last deploy." \
  0 INPUT_MODE=status

say "" "${B}Recap${N}"
for line in "${recap[@]}"; do say "  $line"; done
say "" "Every server ran the broken image only for its health check and serves v2 again; each step's" \
  "summary is what the Actions tab shows for that run. In a workflow all of this is one step:" \
  "  uses: org/openclaw-deploy-action@v1   (see the README's Usage)."
