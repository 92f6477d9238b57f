#!/usr/bin/env bash
# The demo: the example Pyramid service calling the example Thrift service, every request
# traced to the console (a tree of spans with a waterfall) and metered to a local statsd.
#
#   bash scripts/demo.sh           set up, start everything, print what to try; Ctrl-C stops
#   bash scripts/demo.sh --check   start everything on free ports, make one request per
#                                  service, verify traces and metrics, stop, exit 0 if all good
#
# Ports (foreground mode) can be changed with DEMO_HTTP_PORT (9090), DEMO_THRIFT_PORT (9091)
# and DEMO_STATSD_PORT (8125).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

check=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo: unknown argument ${1}" >&2; usage >&2; exit 2 ;;
esac

say() { echo "demo: $*"; }

bash scripts/setup.sh
bash scripts/services.sh

py=$repo/.venv/bin/python
serve=$repo/.venv/bin/baseplate-serve
healthcheck=$repo/.venv/bin/baseplate-healthcheck
statsd_main=$repo/.services/npm/node_modules/statsd/stats.js

command -v node >/dev/null 2>&1 || { echo "demo: Node.js (node) is needed for the statsd daemon" >&2; exit 1; }
[ -f "$statsd_main" ] || { echo "demo: statsd is not installed; run bash scripts/setup.sh" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_free() {
    "$py" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
free_port() {
    "$py" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

if [ "$check" = 1 ]; then
    http_port=$(free_port tcp)
    thrift_port=$(free_port tcp)
    statsd_port=$(free_port udp)
    flush_interval=600000
else
    http_port=${DEMO_HTTP_PORT:-9090}
    thrift_port=${DEMO_THRIFT_PORT:-9091}
    statsd_port=${DEMO_STATSD_PORT:-8125}
    flush_interval=10000
    busy=""
    for port in "$http_port" "$thrift_port"; do
        port_open "$port" && busy="$busy 127.0.0.1:$port (TCP)"
    done
    udp_free "$statsd_port" || busy="$busy 127.0.0.1:$statsd_port (UDP)"
    if [ -n "$busy" ]; then
        echo "demo: already in use:$busy (is the demo running elsewhere?)" >&2
        echo "demo: choose other ports with DEMO_HTTP_PORT, DEMO_THRIFT_PORT and DEMO_STATSD_PORT." >&2
        exit 1
    fi
fi
statsd_mgmt_port=$(free_port tcp)

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/baseplate-demo.XXXXXX")
pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$check" = 1 ] && [ "$status" != 0 ]; then
        for log in "$run_dir"/*.log; do
            [ -f "$log" ] || continue
            echo "---- $(basename "$log")" >&2
            tail -n 60 "$log" >&2
        done
    fi
    rm -rf "$run_dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The committed INI files, with the ports of this run.
sed -e "s/^metrics\.endpoint = .*/metrics.endpoint = 127.0.0.1:$statsd_port/" \
    -e "s/^greeter\.endpoint = .*/greeter.endpoint = 127.0.0.1:$thrift_port/" \
    examples/pyramid_service/app.ini > "$run_dir/web.ini"
sed -e "s/^metrics\.endpoint = .*/metrics.endpoint = 127.0.0.1:$statsd_port/" \
    examples/thrift_service/greeter.ini > "$run_dir/greeter.ini"
cat > "$run_dir/statsd.js" <<JS
{
  "address": "127.0.0.1",
  "port": $statsd_port,
  "mgmt_address": "127.0.0.1",
  "mgmt_port": $statsd_mgmt_port,
  "backends": ["./backends/console"],
  "dumpMessages": true,
  "flushInterval": $flush_interval,
  "console": {"prettyprint": false}
}
JS

# Generate the Greeter's Thrift code once, before two processes want it.
"$py" -c 'from examples.thrift_service.idl import compile_idl; compile_idl()'

# start NAME COMMAND...: run a process in the background, its output prefixed (foreground
# mode) or in NAME.log (check mode).
start() {
    local name=$1
    shift
    if [ "$check" = 1 ]; then
        "$@" > "$run_dir/$name.log" 2>&1 &
    else
        "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
    fi
    pids+=("$!")
}

wait_until() {
    local what=$1
    shift
    for _ in $(seq 1 240); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || { echo "demo: a process exited while waiting for $what" >&2; return 1; }
        done
        sleep 0.25
    done
    echo "demo: timed out waiting for $what" >&2
    return 1
}

start statsd node "$statsd_main" "$run_dir/statsd.js"
start greeter "$serve" "$run_dir/greeter.ini" --bind "127.0.0.1:$thrift_port"
start web "$serve" "$run_dir/web.ini" --bind "127.0.0.1:$http_port"

wait_until "statsd" port_open "$statsd_mgmt_port"
wait_until "the greeter (Thrift) service" "$healthcheck" thrift "127.0.0.1:$thrift_port"
wait_until "the web (Pyramid) service" "$healthcheck" wsgi "127.0.0.1:$http_port"

if [ "$check" = 1 ]; then
    say "services are up; making one request per service"
    "$py" - "$http_port" "$thrift_port" "$run_dir" <<'PY'
"""Make one request per service and verify the traces and metrics the demo shows."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

http_port, thrift_port, run_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])


def fail(message: str) -> None:
    print(f"demo check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/hello/demo", timeout=20) as response:
    body = json.load(response)
if not body.get("message", "").startswith("Hello, demo!"):
    fail(f"unexpected answer from the web service: {body!r}")
web_trace = format(body["trace_id"], "016x")

client = subprocess.run(
    [sys.executable, "-m", "examples.thrift_service.client", "--endpoint",
     f"127.0.0.1:{thrift_port}", "checker"],
    capture_output=True, text=True, timeout=60,
)
if client.returncode != 0 or not client.stdout.startswith("Hello, checker!"):
    fail(f"the Thrift client failed ({client.returncode}): {client.stdout}{client.stderr}")
client_traces = [line.split()[1] for line in client.stderr.splitlines() if line.startswith("trace ")]
if not client_traces:
    fail(f"the Thrift client printed no trace: {client.stderr}")

expectations = {
    "web.log": [
        f"trace {web_trace}  hello",
        "├─ redis.INCRBY",
        "greeter.greet",
    ],
    "greeter.log": [
        f"trace {web_trace}  greet",   # the Thrift service continued the web request's trace
        f"trace {client_traces[0]}  greet",
        "redis.INCRBY",
        "compose (local)",
    ],
    "statsd.log": [
        "hello_web.server.hello:",
        "hello_web.server.hello.success:1|c",
        "hello_web.clients.redis.INCRBY:",
        "hello_web.clients.greeter.greet:",
        "hello_web.greetings:1|c",
        "greeter.server.greet:",
        "greeter.greeting.compose:",
    ],
}
deadline = time.monotonic() + 30
while True:
    missing = [
        f"{name}: {text!r}"
        for name, texts in expectations.items()
        for text in texts
        if text not in (run_dir / name).read_text(errors="replace")
    ]
    if not missing:
        break
    if time.monotonic() > deadline:
        fail("not found: " + "; ".join(missing))
    time.sleep(0.1)
print(f"demo check: OK (web trace {web_trace}, client trace {client_traces[0]})")
PY
    exit 0
fi

cat <<EOF

================================================================================================
The demo is running (Ctrl-C stops everything):

  [web]      Pyramid service   http://127.0.0.1:$http_port       examples/pyramid_service/app.ini
  [greeter]  Thrift service    127.0.0.1:$thrift_port             examples/thrift_service/greeter.ini
  [statsd]   statsd daemon     udp://127.0.0.1:$statsd_port       console backend

Try, in another terminal (from $repo):

  curl http://127.0.0.1:$http_port/hello/Ada
  .venv/bin/python -m examples.thrift_service.client --endpoint 127.0.0.1:$thrift_port Grace
  curl -H 'X-Trace: 1234' -H 'X-Parent: 1' -H 'X-Span: 5678' -H 'X-Sampled: 1' http://127.0.0.1:$http_port/hello/Linus
  .venv/bin/baseplate-healthcheck thrift 127.0.0.1:$thrift_port

Where to look, here:

  [web] and [greeter] lines: each request as a tree of spans with a waterfall; a web request's
      greeter.greet call shows up again as the greeter's "greet" tree, with the same trace id.
  [statsd] lines: every metric as it arrives (hello_web.server.hello, hello_web.clients.redis.INCRBY,
      greeter.server.greet, ...); every $((flush_interval / 1000)) s statsd prints its aggregated totals.
================================================================================================

EOF

# Until Ctrl-C, or until one of the processes stops by itself.
set +e
wait -n "${pids[@]}"
status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -lt 128 ]; then
    echo "demo: a process failed (exit status $status); stopping the demo" >&2
    exit "$status"
fi
echo "demo: stopped"
