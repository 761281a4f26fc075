#!/usr/bin/env bash
# npm run demo: brings up a small fleet (network namespaces with sshd + dockerd, a local registry),
# runs the bundled action against it the way a workflow step would, and tears the fleet down.
# Needs root (namespaces, daemons); installs the rig's packages on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
RIG=__tests__/rig/rig.sh
SERVERS=${DEMO_SERVERS:-3}
export RIG_DIR=${RIG_DIR:-/tmp/openclaw-rig}

[ "$(id -u)" -eq 0 ] || { echo "npm run demo needs root: it creates network namespaces and starts sshd and dockerd." >&2; exit 1; }
[ -f dist/index.js ] || { echo "dist/index.js is missing: run 'npm ci --ignore-scripts && npm run package' first." >&2; exit 1; }
if [ "$(bash "$RIG" status 2>/dev/null || true)" != down ]; then
  echo "A test fleet from an earlier run is still there; removing it first." >&2
  bash "$RIG" down
fi
bash "$RIG" install
trap 'bash "$RIG" down' EXIT
bash "$RIG" up "$SERVERS"

work=$(mktemp -d)
# A registry for the demo fleet: two tenants, the servers' real host keys.
node -e '
  const fleet = JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8"));
  const servers = fleet.servers.map((s, i) => ({ name: s.name, host: s.host, tenant: i % 2 ? "globex" : "acme",
    region: "rig", port: s.port, user: s.user, path: s.path, hostKey: s.hostKey }));
  process.stdout.write(JSON.stringify({ servers }, null, 2));
' "$RIG_DIR" > "$work/servers.json"
image() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8")).images[process.argv[2]])' "$RIG_DIR" "$1"; }
key_file=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8")).privateKeyFile)' "$RIG_DIR")
known_hosts_file=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8")).knownHostsFile)' "$RIG_DIR")

# Runs dist/index.js with inputs passed as the runner passes them (INPUT_<NAME>, hyphens kept), shows
# its log with each server's group folded to its title line, then the job summary it wrote: one table
# row per server.
run_action() {
  local title=$1
  shift
  : > "$work/summary.md"
  : > "$work/output"
  printf '\n\033[1m== %s ==\033[0m\n' "$title"
  env "INPUT_SERVERS-FILE=$work/servers.json" "INPUT_SSH-PRIVATE-KEY=$(cat "$key_file")" \
    "INPUT_KNOWN-HOSTS=$(cat "$known_hosts_file")" "INPUT_MAX-PARALLEL=10" "INPUT_HEALTH-TIMEOUT=10" \
    GITHUB_OUTPUT="$work/output" GITHUB_STEP_SUMMARY="$work/summary.md" GITHUB_REPOSITORY=acme/demo \
    GITHUB_RUN_ID=1 GITHUB_SERVER_URL=https://github.com RUNNER_TEMP="$work" "$@" node dist/index.js \
    | awk '/^::group::/ { sub(/^::group::/, ""); print; hide = 1; next } /^::endgroup::/ { hide = 0; next }
           /^::add-mask::/ || /^$/ || hide { next } { print }' || true
  echo "-- job summary --"
  cat "$work/summary.md"
  return 0
}

run_action "dry run: the plan, no connection" "INPUT_DRY-RUN=true" "INPUT_IMAGE=$(image v2)" INPUT_CANARY=1
run_action "deploy v2 to every server (first server as canary)" "INPUT_IMAGE=$(image v2)" INPUT_CANARY=1
run_action "deploy a broken image to acme: health check fails, automatic rollback" "INPUT_IMAGE=$(image broken)" INPUT_TENANTS=acme
run_action "status of the fleet (read-only)" INPUT_MODE=status
echo
echo "Demo done; tearing the fleet down."
