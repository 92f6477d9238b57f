#!/usr/bin/env bash
# Installs what the benchmarks need beside the project's own .venv (idempotent):
# * the `statsd` PyPI library into .venv (the raw OpenTelemetry + statsd baseline of
#   request_overhead.py; a benchmark-only dependency, not one of the package's);
# * reddit's baseplate 1.5.5 in its own virtualenv, .services/reddit-baseplate-1.5, made with
#   the same Python as .venv (request_overhead.py and serve_throughput.py run it as a subprocess).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    echo "benchmarks/setup.sh: .venv is missing; run scripts/setup.sh first" >&2
    exit 1
fi

STATSD_VERSION=4.0.1
if ! .venv/bin/python -c "import statsd, sys; sys.exit(statsd.__version__ != '$STATSD_VERSION')" 2>/dev/null; then
    echo "benchmarks/setup.sh: installing statsd==$STATSD_VERSION into .venv"
    .venv/bin/pip install -q "statsd==$STATSD_VERSION" 2>&1 | grep -v "^WARNING: Location" || true
fi

# The interpreter .venv was made from (pyvenv.cfg's "executable", else its "home").
PYTHON=$(sed -n 's/^executable = //p' .venv/pyvenv.cfg)
if [ -z "$PYTHON" ] || [ ! -x "$PYTHON" ]; then
    PYTHON=$(sed -n 's/^home = //p' .venv/pyvenv.cfg)/python3
fi

peer=.services/reddit-baseplate-1.5
peer_stamp=$peer/.installed-$(sha1sum benchmarks/requirements-reddit-1.5.txt | cut -c1-12)
if [ ! -f "$peer_stamp" ]; then
    echo "benchmarks/setup.sh: installing reddit's baseplate 1.5.5 into $peer"
    rm -rf "$peer"
    "$PYTHON" -m venv "$peer"
    "$peer/bin/pip" install -q -r benchmarks/requirements-reddit-1.5.txt 2>&1 | grep -v "^WARNING: Location" || true
    "$peer/bin/python" -I -c "import baseplate, baseplate.observers.tracing, baseplate.observers.metrics, baseplate.frameworks.pyramid, baseplate.server.wsgi"
    touch "$peer_stamp"
fi
