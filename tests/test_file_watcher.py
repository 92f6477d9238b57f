"""Tests for baseplate.file_watcher.FileWatcher against real files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from baseplate.file_watcher import FileWatcher, WatchedFileNotAvailableError


class CountingParser:
    """Parses JSON and counts how often it was called."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, f: IO[Any]) -> Any:
        self.calls += 1
        return json.load(f)


def write(path: Path, content: str, mtime: int) -> None:
    path.write_text(content)
    os.utime(path, (mtime, mtime))


def test_documented_example(tmp_path: Path) -> None:
    path = tmp_path / "watched_file.json"
    path.write_text('{"one": 1, "two": 2}')
    watcher = FileWatcher(str(path), parser=json.load)
    assert watcher.get_data() == {"one": 1, "two": 2}


def test_missing_file_raises(tmp_path: Path) -> None:
    parser = CountingParser()
    missing = str(tmp_path / "nope.json")
    watcher = FileWatcher(missing, parser)
    with pytest.raises(WatchedFileNotAvailableError) as info:
        watcher.get_data()
    assert info.value.path == missing
    assert isinstance(info.value.inner, FileNotFoundError)
    assert str(info.value).startswith(missing + ": ")
    assert parser.calls == 0


def test_parses_only_when_mtime_changes(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    write(path, '{"a": 1}', mtime=1000)
    parser = CountingParser()
    watcher = FileWatcher(str(path), parser)

    assert watcher.get_data() == {"a": 1}
    assert watcher.get_data() == {"a": 1}
    assert parser.calls == 1

    # same mtime: not re-read even though the content differs
    write(path, '{"a": 2}', mtime=1000)
    assert watcher.get_data() == {"a": 1}
    assert parser.calls == 1

    write(path, '{"a": 3}', mtime=2000)
    assert watcher.get_data() == {"a": 3}
    assert parser.calls == 2

    # an older mtime (e.g. a file renamed into place) is a change too
    write(path, '{"a": 4}', mtime=500)
    assert watcher.get_data() == {"a": 4}


def test_keeps_data_when_file_deleted(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    write(path, '{"a": 1}', mtime=1000)
    watcher = FileWatcher(str(path), json.load)
    assert watcher.get_data() == {"a": 1}
    path.unlink()
    assert watcher.get_data() == {"a": 1}


def test_bad_first_load_raises_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    write(path, "!", mtime=1000)
    watcher = FileWatcher(str(path), json.load)
    with pytest.raises(WatchedFileNotAvailableError) as info:
        watcher.get_data()
    assert isinstance(info.value.inner, json.JSONDecodeError)
    # still raising on the next call with the same mtime, and no cached garbage
    with pytest.raises(WatchedFileNotAvailableError):
        watcher.get_data()

    write(path, '{"ok": true}', mtime=1000)
    assert watcher.get_data() == {"ok": True}


def test_bad_write_keeps_last_good_data_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data.json"
    write(path, '{"a": 1}', mtime=1000)
    parser = CountingParser()
    watcher = FileWatcher(str(path), parser)
    assert watcher.get_data() == {"a": 1}

    write(path, "{not json", mtime=2000)
    with caplog.at_level(logging.WARNING, logger="baseplate.file_watcher"):
        assert watcher.get_data() == {"a": 1}
    assert any(str(path) in record.getMessage() for record in caplog.records)
    # the bad version is not re-parsed on every call
    assert watcher.get_data() == {"a": 1}
    assert parser.calls == 2

    write(path, '{"b": 3}', mtime=3000)
    assert watcher.get_data() == {"b": 3}


def test_binary_and_text_modes(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes("snow ☃\r\nman".encode())
    assert FileWatcher(str(path), lambda f: f.read(), binary=True).get_data() == (
        "snow ☃\r\nman".encode()
    )
    assert FileWatcher(str(path), lambda f: f.read()).get_data() == "snow ☃\nman"
    assert FileWatcher(str(path), lambda f: f.read(), newline="").get_data() == "snow ☃\r\nman"
    with pytest.raises(WatchedFileNotAvailableError):
        FileWatcher(str(path), lambda f: f.read(), encoding="ascii").get_data()


def test_binary_rejects_text_options(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        FileWatcher(str(tmp_path / "x"), json.load, binary=True, encoding="utf-8")
    with pytest.raises(TypeError):
        FileWatcher(str(tmp_path / "x"), json.load, binary=True, newline="\n")


def test_timeout_raises_when_file_never_appears(tmp_path: Path) -> None:
    missing = str(tmp_path / "never.json")
    with pytest.raises(WatchedFileNotAvailableError) as info:
        FileWatcher(missing, json.load, timeout=0.05)
    assert info.value.path == missing


def test_timeout_raises_when_file_never_parses(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("!")
    with pytest.raises(WatchedFileNotAvailableError):
        FileWatcher(str(path), json.load, timeout=0.05)


def test_timeout_waits_for_file_to_appear(tmp_path: Path) -> None:
    path = tmp_path / "later.json"
    writer = threading.Timer(0.05, lambda: path.write_text('{"late": 1}'))
    writer.start()
    try:
        watcher = FileWatcher(str(path), json.load, timeout=30)
    finally:
        writer.join()
    assert watcher.get_data() == {"late": 1}


def test_timeout_waits_cooperatively_under_gevent(tmp_path: Path) -> None:
    # A monkey-patched process of its own: while the constructor waits, another
    # greenlet must get to run and create the file.
    path = tmp_path / "greenlet.json"
    script = textwrap.dedent(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import gevent, json
        from baseplate.file_watcher import FileWatcher

        def write():
            gevent.sleep(0.05)
            with open({str(path)!r}, "w") as f:
                f.write('{{"from": "greenlet"}}')

        gevent.spawn(write)
        print(json.dumps(FileWatcher({str(path)!r}, json.load, timeout=30).get_data()))
        """
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"from": "greenlet"}
