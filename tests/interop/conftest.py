"""Reddit's own baseplate as a peer: its Thrift server and client, edge context and metrics.

``scripts/setup.sh`` installs reddit's baseplate from PyPI (pinned in
``peer-requirements.txt``) into ``.services/reddit-baseplate``; ``reddit_peer.py`` runs there,
in its own process, and prints what it saw as JSON lines.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from baseplate.edge_context import AUTHENTICATION_PUBLIC_KEY_SECRET

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = REPO_ROOT / ".services" / "reddit-baseplate" / "bin" / "python"
PEER_SCRIPT = Path(__file__).with_name("reddit_peer.py")


def peer_command(*args: str, script: Path = PEER_SCRIPT) -> list[str]:
    """The command line running a peer script with reddit's baseplate (``-I``: our checkout
    and environment never shadow the peer's ``baseplate``)."""
    assert PEER_PYTHON.exists(), f"{PEER_PYTHON} is missing: run scripts/setup.sh"
    return [str(PEER_PYTHON), "-I", str(script), *args]


def run_peer_script(script: Path, *args: str, request: Any = None) -> Any:
    """Run one command of a peer script to its end, ``request`` (if any) as JSON on its
    stdin; return the last JSON line it printed."""
    done = subprocess.run(
        peer_command(*args, script=script),
        input="" if request is None else json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def run_peer() -> Callable[..., dict[str, Any]]:
    """``run_peer("edge-new", "--secrets", path, ...)``: run one ``reddit_peer.py`` command,
    return its JSON."""

    def run(*args: str) -> dict[str, Any]:
        result: dict[str, Any] = run_peer_script(PEER_SCRIPT, *args)
        return result

    return run


class PeerProcess:
    """A long-running peer script; what it prints, one JSON line at a time, is read back
    with :meth:`next_line`."""

    def __init__(self, *args: str, script: Path = PEER_SCRIPT) -> None:
        self.process = subprocess.Popen(
            peer_command(*args, script=script),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next_line(self) -> dict[str, Any]:
        """The next JSON line the peer printed (fails with its stderr if none comes)."""
        try:
            line = self._lines.get(timeout=30)
        except queue.Empty:
            self.process.kill()
            _, stderr = self.process.communicate()
            raise AssertionError(f"the peer said nothing; stderr:\n{stderr}") from None
        value: dict[str, Any] = json.loads(line)
        return value

    def stop(self) -> None:
        self.process.kill()
        self.process.communicate()


class PeerServer(PeerProcess):
    """Reddit's baseplate serving ``BaseplateService`` on loopback; each call's view of the
    trace is read back with :meth:`next_call`."""

    def __init__(self) -> None:
        super().__init__("thrift-server")
        self.port: int = self.next_line()["port"]

    def next_call(self) -> dict[str, Any]:
        """What the peer's handler saw on the next call: span ids, headers, Edge-Request."""
        return self.next_line()


@pytest.fixture
def peer_server() -> Iterator[PeerServer]:
    server = PeerServer()
    yield server
    server.stop()


class AuthService:
    """Signs tokens as reddit's authentication service does (RS256), with rotating keys."""

    def __init__(self) -> None:
        self.keys = {
            version: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for version in ("current", "previous")
        }

    def public_pem(self, version: str) -> str:
        return (
            self.keys[version]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(self, version: str = "current", expires_in: int = 3600, **claims: Any) -> str:
        claims.setdefault("exp", int(time.time()) + expires_in)
        return jwt.encode(claims, self.keys[version], algorithm="RS256")


def write_auth_secrets(path: Path, auth: AuthService) -> Path:
    """Write a secrets file holding ``auth``'s public keys (current and previous) as the
    versioned secret baseplate validates tokens with; return its path."""
    secret = {
        "type": "versioned",
        "current": auth.public_pem("current"),
        "previous": auth.public_pem("previous"),
    }
    document = {
        "secrets": {AUTHENTICATION_PUBLIC_KEY_SECRET: secret},
        "vault": {"url": "http://127.0.0.1:8200/", "token": "t"},
    }
    path.write_text(json.dumps(document))
    return path
