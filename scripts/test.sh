#!/usr/bin/env bash
# Sets up everything and runs the whole check: ruff, mypy, the unit part of the suite on the
# lowest and highest supported Pythons (TEST_PYTHONS, default "3.10 3.13", each in its own
# .venv-X.Y), and the whole test suite on the main virtualenv's Python. Arguments go to the
# main pytest run; with any, the other Pythons are skipped (a developer running a few tests)
# unless TEST_PYTHONS is set.
# The exit status is pytest's (the main run's, else the first failing unit run's).
set -euo pipefail
cd "$(dirname "$0")/.."

# The unit part: no interop peer, no servers of its own; well under a minute on each Python.
UNIT_TESTS=(
    tests/core tests/otel_bridge tests/exporters
    tests/test_config.py tests/test_config_fuzz.py tests/test_layering.py
    tests/test_compat_0_28.py tests/test_distribution.py tests/test_packaging.py
    tests/test_random.py tests/test_retry.py tests/test_crypto.py
)
if [ $# -gt 0 ]; then default_pythons=""; else default_pythons="3.10 3.13"; fi
export TEST_PYTHONS=${TEST_PYTHONS-$default_pythons}

bash scripts/setup.sh
bash scripts/services.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy baseplate otel_bridge exporters

# One run at a time: the sidecar tests' POSIX message queues count against one per-user limit.
unit_status=0
for version in $TEST_PYTHONS; do
    echo "== pytest, the unit part, on Python $version (.venv-$version)"
    status=0
    ".venv-$version/bin/python" -m pytest -q "${UNIT_TESTS[@]}" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "== the unit part failed on Python $version (pytest exit status $status)"
        [ "$unit_status" -ne 0 ] || unit_status=$status
    fi
done

echo "== pytest"
main_status=0
.venv/bin/python -m pytest "$@" || main_status=$?
if [ "$main_status" -ne 0 ]; then
    exit "$main_status"
fi
exit "$unit_status"
