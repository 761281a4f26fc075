# dist/index.js of the test rig's images: the command-line shape of upstream's `node dist/index.js
# <command>` (its `node` is a shell that runs this file), not OpenClaw's behaviour.
#   gateway [--bind B] [--port P]   serve /app/www on P (default 18789) and on the bridge port 18790
#   (no command)                    print the usage and exit 0, as the interactive CLI does
version=$(cat /app/VERSION 2>/dev/null)
case ${1:-} in
  gateway)
    shift
    port=18789
    while [ $# -gt 0 ]; do
      case $1 in
        --port) port=$2; shift 2 ;;
        *) shift ;;
      esac
    done
    if [ "$version" = crash ]; then
      echo "openclaw gateway ($version): fatal error during start-up" >&2
      exit 1
    fi
    pids=
    trap 'kill $pids 2>/dev/null; exit 0' TERM INT
    httpd -f -p "$port" -h /app/www &
    pids=$!
    httpd -f -p 18790 -h /app/www &
    pids="$pids $!"
    echo "openclaw gateway ($version) listening on $port"
    wait
    ;;
  '')
    echo "Usage: openclaw <command> (gateway, onboard, channels, health, ...)"
    ;;
  *)
    echo "openclaw $1: not part of the test rig's stand-in"
    ;;
esac
