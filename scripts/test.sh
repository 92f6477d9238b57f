#!/usr/bin/env bash
# Sets up everything and runs the whole check: ruff, mypy, and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy baseplate otel_bridge exporters
echo "== pytest"
.venv/bin/python -m pytest "$@"
