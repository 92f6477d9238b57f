"""Fixtures for the edge request context tests.

Tokens are signed here with RSA keys generated for the test run, as the authentication
service would sign them; the public keys go into a real secrets file read by a real
:class:`~baseplate.secrets.SecretsStore`.
"""

from __future__ import annotations

import http.server
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
from thrift.server.TServer import TThreadedServer
from thrift.transport.TSocket import TServerSocket
from thrift.transport.TTransport import TTransportFactoryBase

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.core import Baseplate
from baseplate.edge_context import AUTHENTICATION_PUBLIC_KEY_SECRET, EdgeRequestContextFactory
from baseplate.integration.thrift import BaseplateProcessorEventHandler, ContextProcessor
from baseplate.secrets import SecretsStore

REPO_ROOT = Path(__file__).resolve().parents[2]


class SigningKey:
    """An RSA key pair of the authentication service."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: dict[str, Any], expires_in: float | None = 3600) -> str:
        """A token with ``claims``, expiring ``expires_in`` seconds from now (None: no exp)."""
        payload = dict(claims)
        if expires_in is not None:
            payload.setdefault("exp", int(time.time() + expires_in))
        return jwt.encode(payload, self.private_key, algorithm="RS256")


@pytest.fixture(scope="session")
def keys() -> dict[str, SigningKey]:
    """Key pairs: ``current``, ``previous`` and ``next`` versions of the secret, and
    ``stranger``, a key the service does not know."""
    return {name: SigningKey() for name in ("current", "previous", "next", "stranger")}


def write_secrets(path: Path, public_key_versions: dict[str, str]) -> None:
    """Write a secrets file as the fetcher does (temp file + rename, mtime moved on)."""
    secret: dict[str, Any] = {"type": "versioned", "encoding": "identity"}
    secret.update(public_key_versions)
    document = {
        "secrets": {AUTHENTICATION_PUBLIC_KEY_SECRET: secret},
        "vault": {"token": "test-token", "url": "http://127.0.0.1:8200/"},
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    # the store reloads on a changed mtime; make sure a rewrite within one tick is seen
    mtime = path.stat().st_mtime + 1 if path.exists() else time.time()
    os.utime(temporary, (mtime, mtime))
    temporary.replace(path)


@pytest.fixture
def secrets_path(tmp_path: Path, keys: dict[str, SigningKey]) -> Path:
    """The secrets file: the public key's current and previous versions."""
    path = tmp_path / "secrets.json"
    write_secrets(
        path, {"current": keys["current"].public_pem, "previous": keys["previous"].public_pem}
    )
    return path


@pytest.fixture
def secrets(secrets_path: Path) -> SecretsStore:
    return SecretsStore(str(secrets_path))


@pytest.fixture
def factory(secrets: SecretsStore) -> EdgeRequestContextFactory:
    return EdgeRequestContextFactory(secrets)


@pytest.fixture
def sign(keys: dict[str, SigningKey]) -> Callable[..., str]:
    """``sign(claims, key="current", expires_in=3600)``: a token as the auth service makes it."""

    def make(claims: dict[str, Any], key: str = "current", expires_in: float | None = 3600) -> str:
        return keys[key].sign(claims, expires_in)

    return make


class HeaderRecorder:
    """A real HTTP server on loopback that answers 200 and remembers each request's headers."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.received.append(dict(self.headers.items()))
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/downstream"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def http_downstream() -> Iterator[HeaderRecorder]:
    """A downstream HTTP service recording the headers it is sent."""
    recorder = HeaderRecorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="session")
def edge_hops(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generated ``EdgeHop`` service module of ``edge_hops.thrift``, compiled for this run."""
    out = tmp_path_factory.mktemp("edge-hops-gen")
    subprocess.run(
        [
            "thrift",
            "--gen",
            "py",
            "-I",
            str(REPO_ROOT / "baseplate" / "thrift"),
            "-out",
            str(out),
            str(Path(__file__).with_name("edge_hops.thrift")),
        ],
        check=True,
    )
    sys.path.insert(0, str(out))
    return importlib.import_module("edge_hops.EdgeHop")


class LoopbackThriftServer:
    """A Thrift server on 127.0.0.1 with a thread per connection, speaking THeader."""

    def __init__(self, processor: Any) -> None:
        self.transport = TServerSocket(host="127.0.0.1", port=0, socket_family=socket.AF_INET)
        self.transport.listen()
        port = self.transport.handle.getsockname()[1]
        self.endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", port))
        self.server = TThreadedServer(
            processor,
            self.transport,
            TTransportFactoryBase(),
            THeaderProtocolFactory(),
            daemon=True,
        )
        self._stopped = False
        self._clients: list[Any] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client = self.transport.accept()
            except Exception:
                return
            self._clients.append(client)
            threading.Thread(target=self.server.handle, args=(client,), daemon=True).start()

    def stop(self) -> None:
        self._stopped = True
        for sock in [self.transport.handle] + [client.handle for client in self._clients]:
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.transport.close()
        self._acceptor.join(5)


@pytest.fixture
def thrift_hop(edge_hops: Any) -> Iterator[Callable[..., LoopbackThriftServer]]:
    """``thrift_hop(handler, baseplate, edge_context_factory)``: serve an EdgeHop handler the
    way a baseplate application does; every server is stopped after the test."""
    servers: list[LoopbackThriftServer] = []

    def start(handler: Any, baseplate: Baseplate, factory: Any) -> LoopbackThriftServer:
        processor = ContextProcessor(edge_hops.Processor(handler))
        processor.setEventHandler(
            BaseplateProcessorEventHandler(logging.getLogger("edge-hop"), baseplate, factory)
        )
        server = LoopbackThriftServer(processor)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
