"""The demo (scripts/demo.sh) keeps working: its --check mode starts the example services,
the statsd daemon and makes one request per service, verifying traces and metrics.

The test assumes scripts/setup.sh has run (the demo runs it again; then it does nothing).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_demo_check_starts_everything_and_sees_traces_and_metrics() -> None:
    result = subprocess.run(
        ["bash", "scripts/demo.sh", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "demo check: OK" in result.stdout, output


def test_demo_rejects_unknown_arguments() -> None:
    result = subprocess.run(
        ["bash", "scripts/demo.sh", "--bogus"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown argument --bogus" in result.stderr
