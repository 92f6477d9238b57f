"""Fixtures for the secrets tests: private OpenBao dev servers and secrets files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BAO = REPO_ROOT / ".venv" / "bin" / "bao"
ROOT_TOKEN = "root"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bao:
    """A private OpenBao dev server (in-memory storage, root token ``root``)."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(BAO),
                    "server",
                    "-dev",
                    f"-dev-root-token-id={ROOT_TOKEN}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HOME": str(self.log_path.parent)},
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bao exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/sys/health", timeout=1) as response:
                    if json.load(response).get("initialized"):
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bao did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def api(
        self, method: str, path: str, body: Any = None, token: str = ROOT_TOKEN
    ) -> dict[str, Any]:
        """Call the HTTP API as ``token`` and return the decoded response ({} when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/v1/{path}",
            data=data,
            method=method,
            headers={"X-Vault-Token": token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else {}

    def put_kv2(self, name: str, secret: dict[str, Any]) -> None:
        """Store ``secret`` in the dev server's KV v2 engine at ``secret/<name>``."""
        self.api("POST", f"secret/data/{name}", {"data": secret})

    def enable_kv1(self, mount: str = "kv") -> None:
        """Mount a KV version 1 engine (whose reads carry a lease duration)."""
        self.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "1"}})

    def setup_approle(self, role: str, policy: str, token_ttl: str = "1h") -> tuple[str, str]:
        """Enable AppRole with ``role`` bound to ``policy``; return (role_id, secret_id)."""
        try:
            self.api("POST", "sys/auth/approle", {"type": "approle"})
        except urllib.error.HTTPError as exc:
            if exc.code != 400:  # already enabled
                raise
        self.api(
            "POST",
            f"auth/approle/role/{role}",
            {"token_policies": [policy], "token_ttl": token_ttl, "token_max_ttl": "24h"},
        )
        role_id = self.api("GET", f"auth/approle/role/{role}/role-id")["data"]["role_id"]
        secret_id = self.api("POST", f"auth/approle/role/{role}/secret-id")["data"]["secret_id"]
        return role_id, secret_id

    def put_policy(self, name: str, hcl: str) -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """One private OpenBao dev server shared by the tests that do not stop it."""
    server = Bao(free_port(), tmp_path_factory.mktemp("bao") / "bao.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_bao(tmp_path: Path) -> Iterator[Bao]:
    """A private OpenBao dev server for a test that stops and restarts it."""
    server = Bao(free_port(), tmp_path / "bao.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def write_secrets(tmp_path: Path) -> Callable[[Any], str]:
    """Write a secrets file (a dict as JSON, or raw text) and return its path."""
    path = tmp_path / "secrets.json"

    def write(content: Any) -> str:
        text = content if isinstance(content, str) else json.dumps(content)
        temp = tmp_path / "secrets.json.tmp"
        temp.write_text(text)
        os.replace(temp, path)
        return str(path)

    return write
