"""The documentation builds without warnings, and every example in it runs.

``sphinx-build -W --keep-going -b html`` turns every warning (a broken reference, a malformed
docstring, a missing page) into a failure; ``sphinx-build -W -b doctest`` runs the
``doctest``/``testcode`` blocks of every page, some of which talk to the local servers
(Redis, memcached, PostgreSQL, RabbitMQ, ZooKeeper, OpenBao) started by scripts/services.sh.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPHINX_BUILD = Path(sys.executable).with_name("sphinx-build")


def sphinx_build(builder: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SPHINX_BUILD), *options, "-b", builder, "docs", f"docs/_build/{builder}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


@pytest.mark.timeout(600)
def test_html_builds_without_warnings() -> None:
    # -E: a fresh environment, so a warning in a page that did not change is not skipped.
    result = sphinx_build("html", "-E", "-W", "--keep-going")
    assert result.returncode == 0, result.stdout + result.stderr
    html = REPO / "docs" / "_build" / "html"
    assert (html / "index.html").exists()
    # the style sheet that keeps code blocks and tables from being clipped on narrow screens
    assert (html / "_static" / "narrow-screens.css").exists()
    assert "_static/narrow-screens.css" in (html / "operations.html").read_text()


@pytest.mark.timeout(600)
def test_every_example_in_the_docs_runs() -> None:
    result = sphinx_build("doctest", "-W")
    report = (REPO / "docs" / "_build" / "doctest" / "output.txt").read_text()
    assert result.returncode == 0, report + result.stdout + result.stderr
    assert " 0 failures in tests" in report, report
