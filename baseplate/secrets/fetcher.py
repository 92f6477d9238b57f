"""Daemon that fetches secrets from Vault (or OpenBao) and writes them to a local file.

Run it as ``python -m baseplate.secrets.fetcher CONFIG [--once] [--debug]``. It reads the
``[secret-fetcher]`` section of the INI file ``CONFIG``::

    [secret-fetcher]
    vault.url = https://vault.example.com:8200/
    vault.role = my-server-role
    vault.auth_type = aws
    vault.mount_point = aws-ec2

    output.path = /var/local/secrets.json
    output.owner = www-data
    output.group = www-data
    output.mode = 0400

    secrets =
        secret/one,
        secret/two,

Each secret is a path read with ``GET <vault.url>/v1/<path>``. The file written to
``output.path`` has this shape::

    {
        "secrets": {"secret/one": {...}, "secret/two": {...}},
        "vault": {"token": "<the fetcher's token>", "url": "<vault.url>"},
        "vault_token": "<the same token, for readers of the older format>"
    }

where each secret is the ``data`` of Vault's response. For a KV version 2 engine, list
the API path (``secret/data/myservice/key``); the versioned envelope is unwrapped so the
file holds the secret's own key/value pairs, exactly as for a KV version 1 engine.

Authentication (``vault.auth_type``):

``aws`` (the default)
    Logs in to the AWS auth method at ``vault.mount_point`` (default ``aws-ec2``) as role
    ``vault.role`` with the instance's signed identity document, keeping a client nonce
    in ``/var/local/vault.nonce``. Only works on EC2.
``kubernetes``
    Logs in to the Kubernetes auth method at ``vault.mount_point`` (default
    ``kubernetes``) as role ``vault.role`` with the pod's service account JWT. Only works
    inside a Kubernetes pod.
``approle``
    Logs in to the AppRole auth method at ``vault.mount_point`` (default ``approle``) with
    ``vault.role`` as the role id and the secret id read from the file named by
    ``vault.secret_id_file`` (or the ``VAULT_SECRET_ID`` environment variable; omit both for
    roles that do not bind a secret id). This works anywhere, including against a local
    OpenBao server.
``token``
    Uses an existing token read from the file named by ``vault.token_file`` (or the
    ``VAULT_TOKEN`` environment variable). The file is re-read at each refresh so that an
    outside process may rotate the token.

Further optional keys: ``vault.timeout`` (timespan or seconds, default 10 seconds, more than
zero and at most a day) bounds every HTTP request; ``refresh.max_interval`` (timespan or
seconds, default 10 minutes, more than zero and at most a day) is the longest the daemon
waits between fetches, for secrets and tokens without an expiry. ``output.mode`` is octal,
at most ``0o7777``.

The daemon re-fetches shortly before the soonest secret lease or token expiry (60 seconds
before it, or half-way for short leases). The file is replaced atomically (written to a
temporary file in the same directory, then renamed) so readers never see a partial file.
If Vault cannot be reached, the last good file is kept and fetching is retried with
exponential backoff. With ``--once`` it fetches a single time and exits with status 1 if
that fails.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import logging
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from baseplate import config

logger = logging.getLogger(__name__)

#: The INI section the daemon reads.
CONFIG_SECTION = "secret-fetcher"

K8S_SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
AWS_IDENTITY_DOCUMENT_URL = "http://169.254.169.254/latest/dynamic/instance-identity/pkcs7"
NONCE_FILENAME = "/var/local/vault.nonce"

#: How long before an expiry the daemon refreshes (at most; short leases refresh half-way).
PREFETCH_SECONDS = 60.0
#: The shortest wait between fetches, so a zero-length lease cannot make the daemon spin.
MIN_REFRESH_SECONDS = 0.5
#: The first retry delay after a failed fetch; it doubles up to ``refresh.max_interval``.
INITIAL_BACKOFF_SECONDS = 0.5

DEFAULT_MOUNT_POINTS = {"aws": "aws-ec2", "kubernetes": "kubernetes", "approle": "approle"}


class VaultError(Exception):
    """Raised when Vault cannot be reached or answers with an error."""


class FetcherConfigError(Exception):
    """Raised when the fetcher configuration is unusable; the message names the key."""


class Token(NamedTuple):
    """A Vault token, when it expires and when to renew it (``None``: it does not expire)."""

    value: str
    expires_at: float | None
    renew_at: float | None

    @classmethod
    def with_ttl(cls, value: str, ttl: Any) -> Token:
        """Make a token that expires ``ttl`` seconds from now (0 or missing: never)."""
        seconds = _ttl_seconds(ttl)
        if seconds is None:
            return cls(value, None, None)
        now = time.time()
        return cls(value, now + seconds, now + refresh_delay(seconds))


def refresh_delay(ttl: float) -> float:
    """Return how long to wait before refreshing something that expires in ``ttl`` seconds."""
    return max(MIN_REFRESH_SECONDS, ttl - min(PREFETCH_SECONDS, ttl / 2))


def _vault_error_message(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if errors:
        return "; ".join(str(error) for error in errors)
    return body.decode("utf-8", "replace").strip()[:200] or "no details"


class VaultClient:
    """A small Vault HTTP API client; every request has a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send ``method /v1/<path>`` and return the decoded JSON response."""
        url = f"{self.base_url}/v1/{urllib.parse.quote(path.strip('/'), safe='/')}"
        headers = {"Accept": "application/json"}
        data = None
        if token is not None:
            headers["X-Vault-Token"] = token
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise VaultError(f"{method} {url}: HTTP {exc.code}: {_vault_error_message(exc.read())}")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise VaultError(f"{method} {url}: {reason}")
        try:
            decoded = json.loads(payload)
        except ValueError as exc:
            raise VaultError(f"{method} {url}: response is not JSON: {exc}")
        if not isinstance(decoded, dict):
            raise VaultError(f"{method} {url}: response is not a JSON object")
        return decoded

    def login(self, mount_point: str, credentials: Mapping[str, Any]) -> Token:
        """Log in to the auth method at ``mount_point`` and return the client token."""
        response = self.request("POST", f"auth/{mount_point}/login", body=credentials)
        auth = response.get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("client_token"), str):
            raise VaultError(f"login at auth/{mount_point} returned no client token")
        return Token.with_ttl(auth["client_token"], auth.get("lease_duration"))

    def lookup_token(self, token: str) -> Token:
        """Return ``token`` with its expiry as reported by ``auth/token/lookup-self``."""
        data = self.request("GET", "auth/token/lookup-self", token=token).get("data") or {}
        return Token.with_ttl(token, data.get("ttl"))

    def read_secret(self, path: str, token: str) -> tuple[dict[str, Any], float | None]:
        """Return the secret's key/value pairs and its lease duration (``None``: no expiry)."""
        response = self.request("GET", path, token=token)
        data = response.get("data")
        if not isinstance(data, dict):
            raise VaultError(f"secret {path!r}: the response has no data object")
        if _is_kv2_envelope(path, data):
            data = data["data"]
        return data, _ttl_seconds(response.get("lease_duration"))


def _is_kv2_envelope(path: str, data: Mapping[str, Any]) -> bool:
    return (
        "/data/" in f"/{path.strip('/')}"
        and isinstance(data.get("data"), dict)
        and isinstance(data.get("metadata"), dict)
    )


def _ttl_seconds(ttl: Any) -> float | None:
    """Return a lease duration in seconds, or ``None`` when it is 0 or missing (no expiry)."""
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 0:
        return float(ttl)
    return None


def _read_credential(path: str | None, env_var: str, key: str) -> str | None:
    if path:
        try:
            with open(path) as credential_file:
                return credential_file.read().strip()
        except OSError as exc:
            raise VaultError(f"cannot read {key} {path!r}: {exc.strerror}")
    return os.environ.get(env_var) or None


class Authenticator:
    """Obtains a Vault token with the configured auth method and renews it before expiry."""

    def __init__(self, client: VaultClient, cfg: config.ConfigNamespace) -> None:
        self.client = client
        self.auth_type: str = cfg.vault.auth_type
        self.role: str | None = cfg.vault.role
        self.mount_point: str = cfg.vault.mount_point or DEFAULT_MOUNT_POINTS.get(
            self.auth_type, ""
        )
        self.token_file: str | None = cfg.vault.token_file
        self.secret_id_file: str | None = cfg.vault.secret_id_file
        self.token: Token | None = None
        methods: dict[str, Callable[[], Token]] = {
            "aws": self._aws_login,
            "kubernetes": self._kubernetes_login,
            "approle": self._approle_login,
            "token": self._existing_token,
        }
        self._authenticate = methods[self.auth_type]

    def get_token(self) -> Token:
        """Return a usable token, authenticating again if it is close to expiring."""
        token = self.token
        if (
            token is None
            or self.auth_type == "token"
            or (token.renew_at is not None and time.time() >= token.renew_at)
        ):
            self.token = token = self._authenticate()
        return token

    def _require_role(self) -> str:
        if not self.role:
            raise FetcherConfigError(f"vault.role is required for auth_type {self.auth_type}")
        return self.role

    def _existing_token(self) -> Token:
        value = _read_credential(self.token_file, "VAULT_TOKEN", "vault.token_file")
        if not value:
            raise FetcherConfigError(
                "auth_type token needs vault.token_file or the VAULT_TOKEN environment variable"
            )
        return self.client.lookup_token(value)

    def _approle_login(self) -> Token:
        credentials = {"role_id": self._require_role()}
        secret_id = _read_credential(self.secret_id_file, "VAULT_SECRET_ID", "vault.secret_id_file")
        if secret_id:
            credentials["secret_id"] = secret_id
        logger.debug("Logging in with AppRole at auth/%s.", self.mount_point)
        return self.client.login(self.mount_point, credentials)

    def _kubernetes_login(self) -> Token:
        try:
            with open(K8S_SERVICE_ACCOUNT_TOKEN_FILE) as jwt_file:
                jwt = jwt_file.read().strip()
        except OSError as exc:
            raise VaultError(
                f"cannot read the Kubernetes service account token "
                f"{K8S_SERVICE_ACCOUNT_TOKEN_FILE!r}: {exc.strerror}"
            )
        logger.debug("Logging in with Kubernetes at auth/%s.", self.mount_point)
        return self.client.login(self.mount_point, {"jwt": jwt, "role": self._require_role()})

    def _aws_login(self) -> Token:
        request = urllib.request.Request(AWS_IDENTITY_DOCUMENT_URL)
        try:
            with urllib.request.urlopen(request, timeout=self.client.timeout) as response:
                identity_document = response.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            raise VaultError(f"cannot fetch the EC2 instance identity document: {exc}")
        logger.debug("Logging in with AWS at auth/%s.", self.mount_point)
        try:
            return self.client.login(
                self.mount_point,
                {
                    "role": self._require_role(),
                    "pkcs7": identity_document,
                    "nonce": _load_or_create_nonce(),
                },
            )
        except VaultError as exc:
            raise VaultError(
                f"{exc} (if this instance logged in before with another nonce, an operator "
                "may need to remove it from the AWS auth identity access list)"
            )


def _load_or_create_nonce() -> str:
    # Our own nonce (instead of one Vault generates) keeps it out of Vault's audit log.
    try:
        with open(NONCE_FILENAME) as nonce_file:
            nonce = nonce_file.read().strip()
            if nonce:
                return nonce
    except FileNotFoundError:
        pass
    nonce = str(uuid.uuid4())
    fd = os.open(NONCE_FILENAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    with os.fdopen(fd, "w") as nonce_file:
        nonce_file.write(nonce)
    return nonce


def write_secrets_file(
    path: str,
    content: Mapping[str, Any],
    owner: int | None = None,
    group: int | None = None,
    mode: int = 0o400,
) -> None:
    """Replace the file at ``path`` with ``content`` as JSON, atomically.

    The data goes to a temporary file in the same directory which gets the requested
    owner, group and mode before it is renamed over ``path``, so readers see either the
    old file or the complete new one, never a partial file or one with looser permissions.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as temp_file:
            os.fchmod(temp_file.fileno(), mode)
            if owner is not None or group is not None:
                os.fchown(
                    temp_file.fileno(),
                    -1 if owner is None else owner,
                    -1 if group is None else group,
                )
            json.dump(content, temp_file, indent=2, sort_keys=True)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except OSError:
            pass
        raise


class SecretFetcher:
    """Fetches the configured secrets and writes the secrets file."""

    def __init__(self, cfg: config.ConfigNamespace) -> None:
        self.cfg = cfg
        self.client = VaultClient(cfg.vault.url, cfg.vault.timeout.total_seconds())
        self.authenticator = Authenticator(self.client, cfg)
        self.max_interval: float = cfg.refresh.max_interval.total_seconds()

    def fetch_once(self) -> float:
        """Fetch every secret, write the file, and return seconds until the next refresh."""
        token = self.authenticator.get_token()
        secrets: dict[str, Any] = {}
        delays = [self.max_interval]
        if token.renew_at is not None:
            delays.append(max(MIN_REFRESH_SECONDS, token.renew_at - time.time()))
        for path in self.cfg.secrets:
            try:
                secrets[path], ttl = self.client.read_secret(path, token.value)
            except VaultError as exc:
                raise VaultError(f"cannot fetch secret {path!r}: {exc}")
            if ttl is not None:
                delays.append(refresh_delay(ttl))

        output = self.cfg.output
        write_secrets_file(
            output.path,
            {
                "secrets": secrets,
                "vault": {"token": token.value, "url": self.cfg.vault.url},
                # Kept for applications that read the token from the older layout.
                "vault_token": token.value,
            },
            owner=output.owner,
            group=output.group,
            mode=output.mode,
        )
        logger.info("Wrote %d secrets to %s.", len(secrets), output.path)
        return min(delays)

    def run_forever(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Fetch, then keep re-fetching before expiries; on failure keep the last file and retry."""
        backoff = INITIAL_BACKOFF_SECONDS
        while True:
            try:
                delay = self.fetch_once()
                backoff = INITIAL_BACKOFF_SECONDS
                logger.debug("Next refresh in %.1f seconds.", delay)
            except (VaultError, FetcherConfigError, OSError) as exc:
                delay = min(backoff, self.max_interval)
                backoff = min(backoff * 2, self.max_interval)
                logger.error(
                    "Fetching secrets failed, keeping %s as it is and retrying in %.1f seconds: %s",
                    self.cfg.output.path,
                    delay,
                    exc,
                )
                # A later login may succeed where the current token was refused.
                self.authenticator.token = None
            sleep(delay)


def _auth_type(text: str) -> str:
    choices = ("aws", "kubernetes", "approle", "token")
    if text not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
    return text


CONFIG_SPEC = {
    "vault": {
        "url": config.String,
        "role": config.Optional(config.String),
        "auth_type": config.Optional(_auth_type, default="aws"),
        "mount_point": config.Optional(config.String),
        "token_file": config.Optional(config.String),
        "secret_id_file": config.Optional(config.String),
        "timeout": config.Optional(
            config.Duration(allow_zero=False), default=datetime.timedelta(seconds=10)
        ),
    },
    "output": {
        "path": config.Optional(config.String, default="/var/local/secrets.json"),
        "owner": config.Optional(config.UnixUser),
        "group": config.Optional(config.UnixGroup),
        "mode": config.Optional(config.IntegerRange(0, 0o7777, base=8), default=0o400),
    },
    "refresh": {
        "max_interval": config.Optional(
            config.Duration(allow_zero=False), default=datetime.timedelta(minutes=10)
        ),
    },
    "secrets": config.Optional(config.TupleOf(config.String), default=[]),
}


def parse_fetcher_config(raw_config: Mapping[str, str]) -> config.ConfigNamespace:
    """Parse the ``[secret-fetcher]`` section's keys into the fetcher configuration."""
    cfg = config.parse_config(raw_config, CONFIG_SPEC)
    if cfg.vault.auth_type in ("aws", "kubernetes", "approle") and not cfg.vault.role:
        raise FetcherConfigError(
            f"vault.role: required for vault.auth_type = {cfg.vault.auth_type}"
        )
    return cfg


def load_config_file(path: str) -> config.ConfigNamespace:
    """Read the INI file at ``path`` and parse its ``[secret-fetcher]`` section."""
    parser = configparser.RawConfigParser()
    try:
        with open(path) as config_file:
            parser.read_file(config_file)
    except OSError as exc:
        raise FetcherConfigError(f"cannot read {path}: {exc.strerror}")
    except configparser.Error as exc:
        raise FetcherConfigError(f"{path}: {exc}")
    if not parser.has_section(CONFIG_SECTION):
        raise FetcherConfigError(f"{path}: no [{CONFIG_SECTION}] section")
    try:
        return parse_fetcher_config(dict(parser.items(CONFIG_SECTION)))
    except config.ConfigurationError as exc:
        raise FetcherConfigError(f"{path} [{CONFIG_SECTION}] {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fetcher command line; return the process exit status."""
    arg_parser = argparse.ArgumentParser(
        prog="python -m baseplate.secrets.fetcher",
        description="Fetch secrets from Vault and keep them in a local file.",
    )
    arg_parser.add_argument(
        "config_file", help="path to an INI file with a [secret-fetcher] section"
    )
    arg_parser.add_argument("--debug", action="store_true", help="enable debug logging")
    arg_parser.add_argument(
        "--once",
        action="store_true",
        help="fetch a single time and exit instead of running as a daemon",
    )
    args = arg_parser.parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s:%(levelname)s:%(message)s",
        level=logging.DEBUG if args.debug else logging.INFO,
    )

    try:
        cfg = load_config_file(args.config_file)
    except FetcherConfigError as exc:
        logger.error("%s", exc)
        return 2
    fetcher = SecretFetcher(cfg)

    if args.once:
        try:
            fetcher.fetch_once()
        except (VaultError, FetcherConfigError, OSError) as exc:
            logger.error("Fetching secrets failed: %s", exc)
            return 1
        return 0

    logger.info("Running the secret fetcher as a daemon.")
    # Exit through SystemExit so that a write in progress removes its temporary file.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        fetcher.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
