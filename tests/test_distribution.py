"""reddit's ``baseplate`` installed beside ``baseplate-otel``: one line at start-up naming the
problem and the fix (baseplate._distribution, imported by baseplate.server).

The second distribution is real metadata on a real ``sys.path`` entry: a ``baseplate``
dist-info (or egg-info) directory as pip (or ``setup.py develop``) writes it, in a site
directory of the test's own, and reddit's baseplate 0.30.9.post0 itself where the interop
peer's virtualenv is installed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baseplate import _distribution

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PEER_SITE_PACKAGES = sorted(
    (REPO_ROOT / ".services" / "reddit-baseplate" / "lib").glob("python3*/site-packages")
)
FIX = "fix: pip uninstall baseplate, then pip install --force-reinstall baseplate-otel"


def fake_reddit_baseplate(site: Path, version: str = "0.30.9.post0") -> Path:
    """A site directory holding reddit's baseplate's metadata as pip installs it (no code:
    the ``baseplate`` package imported stays ours)."""
    info = site / f"baseplate-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: baseplate\nVersion: {version}\n"
        "Summary: reddit's python service framework\n"
    )
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text(
        f"baseplate/__init__.py,,\nbaseplate/server/__init__.py,,\nbin/baseplate-serve,,\n"
        f"baseplate-{version}.dist-info/METADATA,,\n"
    )
    return site


def run(args: list[str], site: Path | None) -> subprocess.CompletedProcess[str]:
    """``args`` with this checkout, after ``site`` if given, on ``PYTHONPATH``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([*([str(site)] if site else []), str(REPO_ROOT)])
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def reddit_site(tmp_path: Path) -> Path:
    return fake_reddit_baseplate(tmp_path / "site-packages")


def test_this_environment_holds_no_reddit_baseplate() -> None:
    assert _distribution.conflict_message() is None
    assert _distribution.IMPORT_WARNING is None


def test_the_message_is_one_line_naming_the_problem_and_the_fix(reddit_site: Path) -> None:
    message = _distribution.conflict_message([str(reddit_site)])
    assert message is not None
    assert "\n" not in message
    assert message.startswith(
        "baseplate-otel: warning: reddit's baseplate 0.30.9.post0 is installed in the same "
        f"environment ({reddit_site})"
    )
    assert "shares files with baseplate-otel" in message
    assert "'pip uninstall baseplate' deletes ours" in message
    assert message.endswith(FIX)


def test_an_egg_info_install_is_found_too(tmp_path: Path) -> None:
    # `setup.py develop` / `pip install -e` of an old checkout writes baseplate.egg-info
    info = tmp_path / "baseplate.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: baseplate\nVersion: 0.28.0\n")
    message = _distribution.conflict_message([str(tmp_path)])
    assert message is not None and "reddit's baseplate 0.28.0 is installed" in message


@pytest.mark.parametrize(
    "name",
    [
        "baseplate_otel-0.28.0.dist-info",
        "baseplate_otel.egg-info",
        "baseplate_py_upgrader-1.0.dist-info",
        "baseplatex-1.0.dist-info",
        "baseplate",  # a package directory, not metadata
    ],
)
def test_other_distributions_are_not_taken_for_it(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    assert _distribution.conflict_message([str(tmp_path)]) is None


def test_the_checkout_itself_is_not_taken_for_it() -> None:
    # the repository root (the servers' tests put it on PYTHONPATH) holds baseplate_otel.egg-info
    assert _distribution.conflict_message([str(REPO_ROOT)]) is None


def test_paths_that_cannot_be_listed_are_skipped(tmp_path: Path, reddit_site: Path) -> None:
    a_file = tmp_path / "python3.zip"
    a_file.write_bytes(b"")
    search = [str(tmp_path / "missing"), str(a_file), str(reddit_site)]
    assert _distribution.conflict_message(search) is not None


@pytest.mark.skipif(not PEER_SITE_PACKAGES, reason="the interop peer venv is not installed")
def test_reddits_own_baseplate_is_detected() -> None:
    # the interoperability tests' virtualenv holds the real reddit baseplate from PyPI
    site = PEER_SITE_PACKAGES[0]
    message = _distribution.conflict_message([str(site)])
    assert message is not None
    assert f"reddit's baseplate 0.30.9.post0 is installed in the same environment ({site})" in (
        message
    )


def test_the_warning_is_printed_once_per_process(
    reddit_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_distribution, "_warned", False)
    stream = io.StringIO()
    first = _distribution.warn_if_reddit_baseplate_installed(stream, [str(reddit_site)])
    again = _distribution.warn_if_reddit_baseplate_installed(stream, [str(reddit_site)])
    assert first is not None and again is None
    assert stream.getvalue() == first + "\n"


def test_the_check_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_distribution, "_warned", False)

    def broken(path: object = None) -> None:
        raise RuntimeError("unreadable metadata")

    monkeypatch.setattr(_distribution, "conflicting_distribution", broken)
    assert _distribution.warn_if_reddit_baseplate_installed(io.StringIO()) is None


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("baseplate-otel: warning:")]


def test_importing_baseplate_server_warns_once(reddit_site: Path) -> None:
    code = "import baseplate.server, baseplate.server.healthcheck, baseplate.server.script"
    result = run([sys.executable, "-c", code], reddit_site)
    assert result.returncode == 0, result.stderr
    (line,) = warning_lines(result.stderr)
    assert f"({reddit_site})" in line and line.endswith(FIX)
    assert result.stderr == line + "\n"


def test_baseplate_serve_warns_at_start(reddit_site: Path) -> None:
    result = run([str(BIN / "baseplate-serve"), "--help"], reddit_site)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    (line,) = warning_lines(result.stderr)
    assert line.endswith(FIX)


def test_nothing_is_printed_without_reddit_baseplate() -> None:
    result = run([sys.executable, "-c", "import baseplate.server"], None)
    assert result.returncode == 0
    assert result.stderr == ""
    result = run([str(BIN / "baseplate-serve"), "--help"], None)
    assert result.returncode == 0
    assert warning_lines(result.stderr) == []


def test_importing_baseplate_alone_does_not_check(reddit_site: Path) -> None:
    # only the server package (the commands) checks: a library user importing baseplate.core
    # in an application pays nothing for it
    result = run(
        [
            sys.executable,
            "-c",
            "import sys, baseplate, baseplate.config; "
            "print('baseplate._distribution' in sys.modules)",
        ],
        reddit_site,
    )
    assert result.stdout.strip() == "False"
