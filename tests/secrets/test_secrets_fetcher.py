"""Tests for the secret fetcher daemon against real OpenBao dev servers."""

from __future__ import annotations

import grp
import http.server
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baseplate.secrets import SecretsStore
from baseplate.secrets import fetcher as fetcher_module
from baseplate.secrets.fetcher import (
    SecretFetcher,
    VaultClient,
    VaultError,
    parse_fetcher_config,
    refresh_delay,
    write_secrets_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
SIMPLE = {"type": "simple", "value": "aGVsbG8=", "encoding": "base64"}
VERSIONED = {"type": "versioned", "current": "new", "previous": "old"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def write_config(path: Path, **keys: str) -> str:
    lines = ["[secret-fetcher]"] + [f"{key} = {value}" for key, value in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def fetcher_config(bao: Any, output: Path, secrets: list[str], **extra: str) -> dict[str, str]:
    keys = {
        "vault.url": bao.url + "/",
        "vault.auth_type": "token",
        "output.path": str(output),
        "secrets": ", ".join(secrets),
    }
    return {**keys, **extra}


def run_fetcher(
    config_path: str, *args: str, token: str | None = "root"
) -> subprocess.CompletedProcess[str]:
    env = dict(SUBPROCESS_ENV)
    env.pop("VAULT_TOKEN", None)
    if token is not None:
        env["VAULT_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "baseplate.secrets.fetcher", config_path, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_once_writes_the_secrets_file(bao: Any, tmp_path: Path) -> None:
    simple, versioned = unique("simple"), unique("versioned")
    bao.put_kv2(simple, SIMPLE)
    bao.put_kv2(versioned, VERSIONED)
    output = tmp_path / "secrets.json"
    paths = [f"secret/data/{simple}", f"secret/data/{versioned}"]
    config_path = write_config(tmp_path / "fetcher.ini", **fetcher_config(bao, output, paths))

    result = run_fetcher(config_path, "--once")

    assert result.returncode == 0, result.stderr
    content = json.loads(output.read_text())
    assert content == {
        "secrets": {paths[0]: SIMPLE, paths[1]: VERSIONED},
        "vault": {"token": "root", "url": bao.url + "/"},
        "vault_token": "root",
    }
    assert stat.S_IMODE(output.stat().st_mode) == 0o400
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secrets.json")] == []

    store = SecretsStore(str(output))
    assert store.get_simple(paths[0]) == b"hello"
    assert list(store.get_versioned(paths[1]).all_versions) == [b"new", b"old"]
    assert store.get_vault_url() == bao.url + "/"


def test_once_applies_owner_group_and_mode(bao: Any, tmp_path: Path) -> None:
    name = unique("owned")
    bao.put_kv2(name, SIMPLE)
    output = tmp_path / "secrets.json"
    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid)
    config_path = write_config(
        tmp_path / "fetcher.ini",
        **fetcher_config(bao, output, [f"secret/data/{name}"]),
        **{"output.owner": "nobody", "output.group": group.gr_name, "output.mode": "0440"},
    )

    result = run_fetcher(config_path, "--once")

    assert result.returncode == 0, result.stderr
    info = output.stat()
    assert (info.st_uid, info.st_gid) == (user.pw_uid, group.gr_gid)
    assert stat.S_IMODE(info.st_mode) == 0o440


def test_kv1_secret_lease_sets_the_refresh(bao: Any, tmp_path: Path) -> None:
    mount = unique("kv")
    bao.enable_kv1(mount)
    bao.api("POST", f"{mount}/short", {**SIMPLE, "ttl": "90s"})
    bao.api("POST", f"{mount}/long", SIMPLE)
    output = tmp_path / "secrets.json"
    cfg = parse_fetcher_config(
        {
            **fetcher_config(bao, output, [f"{mount}/short", f"{mount}/long"]),
            "vault.token_file": str(write_token(tmp_path, "root")),
        }
    )

    delay = SecretFetcher(cfg).fetch_once()

    # 90 s lease, refreshed 45 s early (half of it, as it is shorter than two minutes).
    assert 40 < delay <= 45
    secrets = json.loads(output.read_text())["secrets"]
    assert secrets[f"{mount}/short"] == {**SIMPLE, "ttl": "90s"}
    assert secrets[f"{mount}/long"] == SIMPLE


def write_token(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return path


def test_refresh_delay() -> None:
    assert refresh_delay(3600) == 3540
    assert refresh_delay(100) == 50
    assert refresh_delay(0.1) == 0.5


def test_approle_login_fetches_with_its_own_token(bao: Any, tmp_path: Path) -> None:
    allowed, denied = unique("app"), unique("other")
    bao.put_kv2(allowed, SIMPLE)
    bao.put_kv2(denied, SIMPLE)
    policy = unique("policy")
    bao.put_policy(policy, f'path "secret/data/{allowed}" {{ capabilities = ["read"] }}')
    role_id, secret_id = bao.setup_approle(unique("role"), policy, token_ttl="10m")
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text(secret_id)
    output = tmp_path / "secrets.json"
    keys = {
        **fetcher_config(bao, output, [f"secret/data/{allowed}"]),
        "vault.auth_type": "approle",
        "vault.role": role_id,
        "vault.secret_id_file": str(secret_id_file),
    }

    result = run_fetcher(write_config(tmp_path / "ok.ini", **keys), "--once", token=None)

    assert result.returncode == 0, result.stderr
    content = json.loads(output.read_text())
    token = content["vault"]["token"]
    assert token != "root"
    assert content["secrets"] == {f"secret/data/{allowed}": SIMPLE}
    lookup = bao.api("GET", "auth/token/lookup-self", token=token)["data"]
    assert policy in lookup["policies"]
    assert 0 < lookup["ttl"] <= 600

    # The AppRole token may not read the other secret: the fetch fails and names it.
    keys["secrets"] = f"secret/data/{allowed}, secret/data/{denied}"
    result = run_fetcher(write_config(tmp_path / "denied.ini", **keys), "--once", token=None)
    assert result.returncode == 1
    assert f"secret/data/{denied}" in result.stderr
    assert "403" in result.stderr
    assert json.loads(output.read_text())["vault"]["token"] == token  # last good file kept


def test_approle_token_is_renewed_before_it_expires(bao: Any, tmp_path: Path) -> None:
    name = unique("short-token")
    bao.put_kv2(name, SIMPLE)
    policy = unique("policy")
    bao.put_policy(policy, f'path "secret/data/{name}" {{ capabilities = ["read"] }}')
    role_id, secret_id = bao.setup_approle(unique("role"), policy, token_ttl="4s")
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text(secret_id)
    output = tmp_path / "secrets.json"
    fetcher = SecretFetcher(
        parse_fetcher_config(
            {
                **fetcher_config(bao, output, [f"secret/data/{name}"]),
                "vault.auth_type": "approle",
                "vault.role": role_id,
                "vault.secret_id_file": str(secret_id_file),
            }
        )
    )

    delay = fetcher.fetch_once()
    first_token = json.loads(output.read_text())["vault"]["token"]
    # Half-way through the 4 s token lifetime, well before the 10 minute default refresh.
    assert 1 < delay <= 2

    assert fetcher.fetch_once() == pytest.approx(delay, abs=0.5)
    assert json.loads(output.read_text())["vault"]["token"] == first_token

    time.sleep(delay)
    fetcher.fetch_once()
    second_token = json.loads(output.read_text())["vault"]["token"]
    assert second_token != first_token
    assert bao.api("GET", "auth/token/lookup-self", token=second_token)["data"]["ttl"] > 2


def test_approle_with_wrong_secret_id_fails(bao: Any, tmp_path: Path) -> None:
    role_id, _ = bao.setup_approle(unique("role"), "default")
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text("not-the-secret-id")
    keys = {
        **fetcher_config(bao, tmp_path / "secrets.json", []),
        "vault.auth_type": "approle",
        "vault.role": role_id,
        "vault.secret_id_file": str(secret_id_file),
    }
    result = run_fetcher(write_config(tmp_path / "f.ini", **keys), "--once", token=None)
    assert result.returncode == 1
    assert "auth/approle/login" in result.stderr
    assert not (tmp_path / "secrets.json").exists()


def test_missing_secret_fails_and_keeps_the_last_file(bao: Any, tmp_path: Path) -> None:
    present = unique("present")
    bao.put_kv2(present, SIMPLE)
    output = tmp_path / "secrets.json"
    good = write_config(
        tmp_path / "good.ini", **fetcher_config(bao, output, [f"secret/data/{present}"])
    )
    assert run_fetcher(good, "--once").returncode == 0
    before = output.read_bytes()

    missing = f"secret/data/{unique('missing')}"
    bad = write_config(
        tmp_path / "bad.ini",
        **fetcher_config(bao, output, [f"secret/data/{present}", missing]),
    )
    result = run_fetcher(bad, "--once")

    assert result.returncode == 1
    assert repr(missing) in result.stderr
    assert "404" in result.stderr
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ini", "good.ini", "secrets.json"]


def test_token_auth_without_a_token_is_explained(bao: Any, tmp_path: Path) -> None:
    config_path = write_config(
        tmp_path / "f.ini", **fetcher_config(bao, tmp_path / "secrets.json", [])
    )
    result = run_fetcher(config_path, "--once", token=None)
    assert result.returncode == 1
    assert "VAULT_TOKEN" in result.stderr


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"vault.auth_type": "password"}, "vault.auth_type"),
        ({"vault.url": ""}, "vault.url"),
        ({"output.mode": "rw-r-----"}, "output.mode"),
        ({"output.owner": "no-such-user-here"}, "output.owner"),
        ({"vault.auth_type": "approle"}, "vault.role"),
    ],
)
def test_bad_config_names_the_key(
    bao: Any, tmp_path: Path, keys: dict[str, str], expected: str
) -> None:
    config_path = write_config(
        tmp_path / "f.ini", **{**fetcher_config(bao, tmp_path / "s.json", []), **keys}
    )
    result = run_fetcher(config_path, "--once")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_section_is_explained(tmp_path: Path) -> None:
    config_path = tmp_path / "f.ini"
    config_path.write_text("[app:main]\nfoo = bar\n")
    result = run_fetcher(str(config_path), "--once")
    assert result.returncode == 2
    assert "[secret-fetcher]" in result.stderr


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_requests_time_out(silent_server: str) -> None:
    client = VaultClient(silent_server, timeout=0.2)
    with pytest.raises(VaultError) as info:
        client.request("GET", "secret/data/x", token="root")
    assert silent_server in str(info.value)


def test_write_secrets_file_failure_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    write_secrets_file(str(path), {"secrets": {}}, mode=0o600)
    with pytest.raises(TypeError):
        write_secrets_file(str(path), {"secrets": {"x": object()}})
    assert json.loads(path.read_text()) == {"secrets": {}}
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]


class Daemon:
    """The fetcher running as a daemon in a subprocess."""

    def __init__(self, config_path: str, log_path: Path) -> None:
        self.log_path = log_path
        env = {**SUBPROCESS_ENV, "VAULT_TOKEN": "root"}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "baseplate.secrets.fetcher", config_path, "--debug"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def read_value(output: Path, path: str) -> Any:
    try:
        return json.loads(output.read_text())["secrets"][path]["value"]
    except (OSError, ValueError, KeyError):
        return None


def test_daemon_follows_changes_and_survives_vault_outage(own_bao: Any, tmp_path: Path) -> None:
    name = f"secret/data/{unique('rotating')}"
    own_bao.put_kv2(name[len("secret/data/") :], {"type": "simple", "value": "v1"})
    output = tmp_path / "secrets.json"
    config_path = write_config(
        tmp_path / "fetcher.ini",
        **fetcher_config(own_bao, output, [name]),
        **{"refresh.max_interval": "200 milliseconds", "vault.timeout": "2 seconds"},
    )
    daemon = Daemon(config_path, tmp_path / "fetcher.log")
    try:
        wait_for(lambda: read_value(output, name) == "v1")

        own_bao.put_kv2(name[len("secret/data/") :], {"type": "simple", "value": "v2"})
        wait_for(lambda: read_value(output, name) == "v2")

        # Vault goes away: the file stays as it was, and the daemon keeps trying.
        own_bao.stop()
        before = output.read_bytes()
        wait_for(lambda: daemon.log().count("Fetching secrets failed") >= 2)
        assert output.read_bytes() == before
        assert daemon.process.poll() is None
        assert "retrying" in daemon.log()

        # Vault comes back (a fresh dev server, so the secret is stored again).
        own_bao.start()
        own_bao.put_kv2(name[len("secret/data/") :], {"type": "simple", "value": "v3"})
        wait_for(lambda: read_value(output, name) == "v3")
    finally:
        daemon.stop()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secrets.json")] == []


def test_daemon_rewrites_atomically(bao: Any, tmp_path: Path) -> None:
    name = unique("atomic")
    # A large secret makes a torn write easy to observe if the file were written in place.
    bao.put_kv2(name, {"type": "simple", "value": "x" * 200_000})
    output = tmp_path / "secrets.json"
    config_path = write_config(
        tmp_path / "fetcher.ini",
        **fetcher_config(bao, output, [f"secret/data/{name}"]),
        **{"refresh.max_interval": "10 milliseconds"},
    )
    daemon = Daemon(config_path, tmp_path / "fetcher.log")
    failures: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                text = output.read_text()
            except FileNotFoundError:
                continue
            reads += 1
            try:
                json.loads(text)
            except ValueError as exc:
                failures.append(str(exc))

    try:
        wait_for(output.exists)
        first_inode = output.stat().st_ino
        thread = threading.Thread(target=reader)
        thread.start()
        wait_for(lambda: output.stat().st_ino != first_inode and reads > 50)
        wait_for(lambda: daemon.log().count("Wrote 1 secrets") >= 5)
        stop.set()
        thread.join()
    finally:
        stop.set()
        daemon.stop()
    assert failures == []


class RecordingVault(http.server.BaseHTTPRequestHandler):
    """Answers like Vault's login and KV endpoints and records what it was sent.

    It stands in for Vault's Kubernetes and AWS auth methods and for the EC2 metadata
    service, none of which can run here: a real login needs a Kubernetes API server or
    AWS to verify the credentials.
    """

    requests: list[tuple[str, str, dict[str, Any], str | None]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body, None))
        self.reply({"auth": {"client_token": "login-token", "lease_duration": 3600}})

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, {}, self.headers.get("X-Vault-Token")))
        if self.path == "/identity":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"PKCS7-DOCUMENT")
            return
        self.reply({"data": SIMPLE, "lease_duration": 0})

    def reply(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recording_vault() -> Iterator[str]:
    RecordingVault.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingVault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_kubernetes_login_sends_the_service_account_jwt(
    recording_vault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwt_file = tmp_path / "token"
    jwt_file.write_text("the.service.jwt\n")
    monkeypatch.setattr(fetcher_module, "K8S_SERVICE_ACCOUNT_TOKEN_FILE", str(jwt_file))
    output = tmp_path / "secrets.json"
    cfg = parse_fetcher_config(
        {
            "vault.url": recording_vault,
            "vault.auth_type": "kubernetes",
            "vault.role": "my-role",
            "output.path": str(output),
            "secrets": "secret/one",
            "refresh.max_interval": "2 hours",
        }
    )

    delay = SecretFetcher(cfg).fetch_once()

    assert RecordingVault.requests == [
        ("POST", "/v1/auth/kubernetes/login", {"jwt": "the.service.jwt", "role": "my-role"}, None),
        ("GET", "/v1/secret/one", {}, "login-token"),
    ]
    assert json.loads(output.read_text())["vault"]["token"] == "login-token"
    # The token's one hour lease is renewed a minute early.
    assert delay == pytest.approx(3600 - 60, abs=1)


def test_aws_login_sends_identity_and_keeps_the_nonce(
    recording_vault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce_file = tmp_path / "vault.nonce"
    monkeypatch.setattr(fetcher_module, "NONCE_FILENAME", str(nonce_file))
    monkeypatch.setattr(fetcher_module, "AWS_IDENTITY_DOCUMENT_URL", recording_vault + "/identity")
    cfg = parse_fetcher_config(
        {
            "vault.url": recording_vault,
            "vault.role": "my-role",
            "output.path": str(tmp_path / "secrets.json"),
        }
    )

    SecretFetcher(cfg).fetch_once()
    SecretFetcher(cfg).fetch_once()

    logins = [body for method, _, body, _ in RecordingVault.requests if method == "POST"]
    nonce = nonce_file.read_text()
    assert logins == [{"role": "my-role", "pkcs7": "PKCS7-DOCUMENT", "nonce": nonce}] * 2
    assert stat.S_IMODE(nonce_file.stat().st_mode) == 0o400
    paths = {path for method, path, _, _ in RecordingVault.requests if method == "POST"}
    assert paths == {"/v1/auth/aws-ec2/login"}
