#!/usr/bin/env bash
# Benchmarks on the test rig (real sshd + dockerd per server): our action against the tools operators
# would otherwise use, on the same servers doing the same remote work. Prints medians and ratios.
#
#   bash bench/run.sh [--quick]          (npm run bench)
#
# Needs root (it brings up the rig). Installs pssh and ansible-core from Debian when missing. Holds the
# rig lock (/tmp/openclaw-rig.lock) for the whole run and tears the rig down at the end.
# BENCH_SIZES (default "10 20 50"), BENCH_REPS (default 3), BENCH_SCALE (default 200) override the sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RIG=$ROOT/__tests__/rig/rig.sh
export RIG_DIR=${RIG_DIR:-/tmp/openclaw-rig}

SIZES=${BENCH_SIZES:-10 20 50}
REPS=${BENCH_REPS:-3}
SCALE=${BENCH_SCALE:-200}
if [[ ${1:-} == --quick ]]; then SIZES=${BENCH_SIZES:-10}; REPS=${BENCH_REPS:-1}; SCALE=${BENCH_SCALE:-50}; fi
DEPLOY_SIZES=$(for n in $SIZES; do [[ $n -le 20 ]] && printf '%s ' "$n"; done)

log() { printf '[bench] %s\n' "$*" >&2; }

missing=()
command -v parallel-ssh >/dev/null || missing+=(pssh)
command -v ansible >/dev/null || missing+=(ansible-core)
command -v /usr/bin/time >/dev/null || missing+=(time)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash "$RIG" install >/dev/null

exec 9>/tmp/openclaw-rig.lock
log "waiting for the rig lock"
flock 9
work=$(mktemp -d)
trap 'bash "$RIG" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
[[ $(bash "$RIG" status 2>/dev/null || true) == down ]] || bash "$RIG" down >/dev/null 2>&1

fleet() { node -e 'const f = JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8")); console.log(eval(process.argv[2]))' "$RIG_DIR" "$1"; }
now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# first N servers' addresses, one a line
hosts() { fleet "f.servers.slice(0, $1).map(s => s.host).join('\\n')"; }

# The same read-only work our `mode: status` does on a server, as one command for the other tools:
# Docker and Compose answer, .env is read, containers are inspected, the history and lock are read,
# the health URL is fetched once. (The project folder of a rig server sits beside its Docker socket.)
# shellcheck disable=SC2016
STATUS_CMD='d=${DOCKER_HOST#unix://}; cd "${d%/docker.sock}/openclaw" && docker info --format "{{.ServerVersion}}" >/dev/null && docker compose version >/dev/null && base64 -w0 .env >/dev/null && ids=$(docker compose ps -a -q) && docker inspect --format "{{.State.Status}}" $ids >/dev/null && tail -n 1 .openclaw-deploy/history.log 2>/dev/null; cat .openclaw-deploy/lock/holder 2>/dev/null; curl -s -o /dev/null -w "%{http_code}\n" --max-time 5 http://127.0.0.1:18789/health'

# The same steps our deploy takes, as one script for the other tools: lock, keep the running image,
# pull, switch .env, compose up, wait for two good health answers, prune, history, unlock.
deploy_cmd() {
  # shellcheck disable=SC2016
  printf '%s' 'set -e; d=${DOCKER_HOST#unix://}; cd "${d%/docker.sock}/openclaw"; mkdir -p .openclaw-deploy; mkdir .openclaw-deploy/lock; prev=$(docker inspect --format "{{.Image}}" $(docker compose ps -q gateway)); docker tag "$prev" openclaw-rollback:bench; docker pull -q '"$1"' >/dev/null; sed -i "s#^OPENCLAW_IMAGE=.*#OPENCLAW_IMAGE='"$1"'#" .env; docker compose up -d >/dev/null 2>&1; good=0; for i in $(seq 1 60); do if [ "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://127.0.0.1:18789/health)" = 200 ]; then good=$((good + 1)); [ $good -ge 2 ] && break; else good=0; fi; sleep 1; done; [ $good -ge 2 ]; docker image prune -f >/dev/null; echo "$(date -u) deployed" >> .openclaw-deploy/history.log; rmdir .openclaw-deploy/lock'
}

SSH_OPTS=()
ssh_setup() {
  SSH_OPTS=(-F /dev/null -i "$(fleet f.privateKeyFile)" -o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$(fleet f.knownHostsFile)" -o ConnectTimeout=20)
  {
    echo '[fleet]'
    fleet 'f.servers.map(s => s.name + " ansible_host=" + s.host).join("\\n")'
    echo '[fleet:vars]'
    echo "ansible_user=deploy"
    echo "ansible_ssh_private_key_file=$(fleet f.privateKeyFile)"
    echo "ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile=$(fleet f.knownHostsFile) -o StrictHostKeyChecking=yes'"
  } > "$work/inventory"
  node -e '
    const f = JSON.parse(require("fs").readFileSync(process.argv[1] + "/fleet.json", "utf8"));
    const servers = f.servers.map(s => ({ name: s.name, host: s.host, tenant: "t" + (Number(s.name.slice(1)) % 5), port: 22, user: s.user, path: s.path, hostKey: s.hostKey }));
    process.stdout.write(JSON.stringify({ servers }));' "$RIG_DIR" > "$work/servers.json"
}
export ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_LOCAL_TEMP=$work/ansible-tmp ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=minimal

# Runs the bundled action like the runner does; extra INPUT_ pairs as arguments. Leaves GITHUB_OUTPUT in $work/output.
action() {
  : > "$work/output"
  : > "$work/summary"
  env "INPUT_SERVERS-FILE=$work/servers.json" "INPUT_SSH-PRIVATE-KEY=$(cat "$(fleet f.privateKeyFile)")" \
    "INPUT_KNOWN-HOSTS=$(cat "$(fleet f.knownHostsFile)")" GITHUB_OUTPUT="$work/output" GITHUB_STEP_SUMMARY="$work/summary" \
    RUNNER_TEMP="$work" "$@" node "$ROOT/dist/index.js" > "$work/action.log" 2>&1
}
names() { fleet "f.servers.slice(0, $1).map(s => s.name).join(',')"; }
# every server of the last run had one of the given statuses
all_ok() { node -e '
  const out = require("fs").readFileSync(process.argv[1], "utf8"); const m = /results<<(\S+)\n([\s\S]*?)\n\1/.exec(out);
  const bad = JSON.parse(m[2]).filter(r => !process.argv[2].split(",").includes(r.status));
  if (bad.length) { console.error(bad.map(r => r.name + " " + r.status + " " + r.error).join("\n")); process.exit(1) }' "$work/output" "$1"; }

time_of() { local t0; t0=$(now); "$@" >/dev/null 2>"$work/err" || { log "failed: $*: $(tail -n 5 "$work/err")"; [[ $1 == ours_* ]] && tail -n 5 "$work/action.log" >&2; return 1; }; awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'; }

ours_status() { action INPUT_MODE=status "INPUT_SERVERS=$(names "$1")" "INPUT_MAX-PARALLEL=$1" && all_ok healthy; }
xargs_status() { hosts "$1" | xargs -P "$1" -I{} ssh "${SSH_OPTS[@]}" deploy@{} "$STATUS_CMD" | grep -c '^200$' | grep -qx "$1"; }
pssh_status() { hosts "$1" > "$work/hosts"; parallel-ssh -p "$1" -t 60 -h "$work/hosts" -l deploy -x "${SSH_OPTS[*]}" "$STATUS_CMD" >/dev/null; }
ansible_status() { ansible "fleet[0:$(($1 - 1))]" -i "$work/inventory" -f "$1" -m raw -a "{% raw %}$STATUS_CMD{% endraw %}" > "$work/ansible.log" 2>&1 || { tail -n 5 "$work/ansible.log" >&2; return 1; }; }

ours_deploy() { action "INPUT_IMAGE=$(fleet f.images.v2)" "INPUT_SERVERS=$(names "$1")" "INPUT_MAX-PARALLEL=$1" && all_ok deployed; }
bash_deploy() { local cmd; cmd=$(deploy_cmd "$(fleet f.images.v2)"); hosts "$1" | xargs -P "$1" -I{} ssh "${SSH_OPTS[@]}" deploy@{} "$cmd"; }
ansible_deploy() { ansible "fleet[0:$(($1 - 1))]" -i "$work/inventory" -f "$1" -m raw -a "{% raw %}$(deploy_cmd "$(fleet f.images.v2)"){% endraw %}" > "$work/ansible.log" 2>&1 || { tail -n 5 "$work/ansible.log" >&2; return 1; }; }

# Median of REPS timings of "$@"; before each, `prepare` (not timed) when set.
bench() {
  local samples=() i t
  for ((i = 0; i < REPS; i++)); do
    [[ -n ${prepare:-} ]] && $prepare
    t=$(time_of "$@") || { echo FAIL; return; }
    samples+=("$t")
  done
  printf '%s\n' "${samples[@]}" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "FAIL" || b == "FAIL") print "-"; else printf "%.2f", b / a }'; }

results=$work/results.md
max=0; for n in $SIZES; do ((n > max)) && max=$n; done
log "bringing up $max servers (sshd + dockerd each)"
bash "$RIG" up "$max" >/dev/null 2>&1
ssh_setup

{
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -r); Node $(node --version); $(date -u +%Y-%m-%d). Medians of $REPS runs, seconds; ratio = other / ours (above 1: ours is faster)."
  echo
  echo '### 1. Orchestration: read-only status of every server'
  echo
  # shellcheck disable=SC2016
  echo '| servers | ours (`mode: status`) | xargs -P N ssh | ratio | parallel-ssh -p N | ratio | ansible -f N -m raw | ratio |'
  echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
} > "$results"
for n in $SIZES; do
  log "status on $n servers"
  o=$(bench ours_status "$n"); x=$(bench xargs_status "$n"); p=$(bench pssh_status "$n"); a=$(bench ansible_status "$n")
  echo "| $n | $o | $x | $(ratio "$o" "$x") | $p | $(ratio "$o" "$p") | $a | $(ratio "$o" "$a") |" >> "$results"
done

reset_all() { bash "$RIG" reset all >/dev/null 2>&1; }
{
  echo
  echo '### 2. Full deploy v1 → v2 (pull, switch, restart, health check, prune)'
  echo
  echo '| servers | ours | bash + ssh in parallel | ratio | ansible raw | ratio | ours: slowest server alone in that run |'
  echo '| --- | --- | --- | --- | --- | --- | --- |'
} >> "$results"
for n in $DEPLOY_SIZES; do
  log "deploy on $n servers"
  prepare=reset_all
  o=$(bench ours_deploy "$n")
  slowest=$(node -e 'const out = require("fs").readFileSync(process.argv[1], "utf8"); const m = /results<<(\S+)\n([\s\S]*?)\n\1/.exec(out); console.log((Math.max(...JSON.parse(m[2]).map(r => r.durationMs)) / 1000).toFixed(3))' "$work/output")
  b=$(bench bash_deploy "$n"); a=$(bench ansible_deploy "$n")
  prepare=
  echo "| $n | $o | $b | $(ratio "$o" "$b") | $a | $(ratio "$o" "$a") | $slowest |" >> "$results"
done

# 4. Downtime: a load loop on the server's side counts failed health requests (every 20 ms) while
# the server is deployed; the first to last failure is the downtime.
# shellcheck disable=SC2016
loop_script='end=$((SECONDS + $1)); first=; last=; n=0; f=0; while [ $SECONDS -lt $end ]; do n=$((n + 1)); t=$(date +%s.%N); c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 1 http://127.0.0.1:18789/health); if [ "$c" != 200 ]; then f=$((f + 1)); [ -n "$first" ] || first=$t; last=$t; fi; sleep 0.02; done; if [ -n "$first" ]; then awk -v a="$first" -v b="$last" -v f="$f" -v n="$n" "BEGIN { printf \"%.2f s (%d of %d requests failed)\\n\", b - a, f, n }"; else echo "0 s (0 of $n requests failed)"; fi'
downtime() { # seconds-to-watch, then the command that changes the server
  local watch=$1
  shift
  bash "$RIG" exec s1 -- bash -c "$loop_script" loop "$watch" > "$work/loop" 2>&1 &
  local loop=$!
  sleep 1
  "$@" >/dev/null 2>&1 || true
  wait "$loop"
  cat "$work/loop"
}
log "downtime"
reset_all
restart=$(downtime 8 bash "$RIG" exec s1 -- docker compose up -d --force-recreate)
reset_all
healthy=$(downtime 12 action "INPUT_IMAGE=$(fleet f.images.v2)" INPUT_SERVERS=s1)
reset_all
rolled=$(downtime 25 action "INPUT_IMAGE=$(fleet f.images.broken)" INPUT_SERVERS=s1 INPUT_HEALTH-TIMEOUT=5)
{
  echo
  echo '### 4. Downtime of one gateway (requests every 20 ms from the server itself)'
  echo
  echo '| what | unanswered |'
  echo '| --- | --- |'
  echo "| container restart alone (\`docker compose up -d --force-recreate\`) | $restart |"
  echo "| our deploy v1 → v2 | $healthy |"
  echo "| our deploy of a broken image, rolled back (health-timeout 5 s) | $rolled |"
} >> "$results"

log "scale: $SCALE servers"
bash "$RIG" down >/dev/null 2>&1
bash "$RIG" up "$SCALE" >/dev/null 2>&1
ssh_setup
: > "$work/output"
: > "$work/summary"
/usr/bin/time -f '%e %U %S %M' -o "$work/time" env "INPUT_SERVERS-FILE=$work/servers.json" "INPUT_SSH-PRIVATE-KEY=$(cat "$(fleet f.privateKeyFile)")" \
  "INPUT_KNOWN-HOSTS=$(cat "$(fleet f.knownHostsFile)")" GITHUB_OUTPUT="$work/output" GITHUB_STEP_SUMMARY="$work/summary" \
  RUNNER_TEMP="$work" INPUT_MODE=status INPUT_MAX-PARALLEL=50 node "$ROOT/dist/index.js" > "$work/action.log" 2>&1 || true
errors=$(all_ok healthy 2>&1 | wc -l)
read -r wall user sys rss < "$work/time"
{
  echo
  echo "### 3. Scale: \`mode: status\` on $SCALE servers (sshd + dockerd each), max-parallel 50"
  echo
  echo '| wall | CPU per server | peak RSS of the action | servers not healthy |'
  echo '| --- | --- | --- | --- |'
  awk -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v n="$SCALE" -v e="$errors" 'BEGIN { printf "| %.1f s | %.1f ms | %.0f MB | %d |\n", w, (u + s) * 1000 / n, r / 1024, e }'
} >> "$results"

echo
cat "$results"
