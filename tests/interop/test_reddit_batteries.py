"""The batteries against reddit's own baseplate: secrets, crypto, experiments and events.

The peer is reddit's baseplate run by ``reddit_peer_batteries.py`` in its own process (one
per test). Its drivers are also imported here and run with OUR modules, so both
implementations answer exactly the same questions and their answers are compared whole.
Secrets come from the OpenBao dev server of ``scripts/services.sh`` (127.0.0.1:8200, token
``root``), on mounts private to this module.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import random
import stat
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from baseplate import crypto, events, experiments, file_watcher, secrets
from baseplate.secrets import SecretsStore
from baseplate.secrets import fetcher as fetcher_module
from baseplate.thrift import ttypes

from . import reddit_peer_batteries as drivers
from .conftest import REPO_ROOT, run_peer_script

PEER_SCRIPT = Path(__file__).with_name("reddit_peer_batteries.py")
BAO_URL = "http://127.0.0.1:8200"
DAY = 24 * 60 * 60


def run_peer(*args: str, request: Any = None) -> Any:
    """Run one peer sub-command with reddit's baseplate; return its JSON answer."""
    return run_peer_script(PEER_SCRIPT, *args, request=request)


# --- secrets -------------------------------------------------------------------------------


def bao(method: str, path: str, body: Any = None, token: str | None = "root") -> dict[str, Any]:
    """Call the OpenBao HTTP API; return the decoded answer ({} when empty)."""
    request = urllib.request.Request(
        f"{BAO_URL}/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"X-Vault-Token": token} if token else {},
    )
    with urllib.request.urlopen(request) as response:
        payload = response.read()
    return json.loads(payload) if payload else {}


RAW_BYTES = bytes(range(256))
PREVIOUS_KEY, CURRENT_KEY = b"\x00previous\xff", b"\x01current\xfe"

# name -> the secret stored at it (KV version 1)
KV1_SECRETS: dict[str, dict[str, Any]] = {
    "simple-identity": {"type": "simple", "value": "pässwörd ✓"},
    "simple-base64": {
        "type": "simple",
        "value": base64.b64encode(RAW_BYTES).decode(),
        "encoding": "base64",
    },
    "versioned-full": {
        "type": "versioned",
        "current": "now",
        "previous": "before",
        "next": "soon",
        "encoding": "identity",
    },
    "versioned-base64": {
        "type": "versioned",
        "current": base64.b64encode(CURRENT_KEY).decode(),
        "previous": base64.b64encode(PREVIOUS_KEY).decode(),
        "encoding": "base64",
    },
    "versioned-current-only": {"type": "versioned", "current": "only"},
    "bad-padding": {"type": "simple", "value": "aGVsbG8", "encoding": "base64"},
    "unknown-encoding": {"type": "simple", "value": "x", "encoding": "rot13"},
    "no-type": {"value": "x"},
    "no-current": {"type": "versioned", "previous": "p"},
}
KV2_SECRET = {"type": "simple", "value": "from-kv2"}

QUERIES = [
    ("get_simple", "simple-identity"),
    ("get_simple", "simple-base64"),
    ("get_versioned", "versioned-full"),
    ("get_versioned", "versioned-base64"),
    ("get_versioned", "versioned-current-only"),
    ("get_simple", "bad-padding"),
    ("get_simple", "unknown-encoding"),
    ("get_simple", "no-type"),
    ("get_versioned", "no-current"),
    ("get_versioned", "simple-identity"),
    ("get_simple", "versioned-full"),
    ("get_simple", "not-there"),
]


def b64(value: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(value).decode()}


def expected_answers(vault_token: str) -> list[Any]:
    """What a SecretsStore answers to QUERIES (+ the vault URL and token), per the reference."""
    versioned_full = [b64(b"now"), b64(b"before"), b64(b"soon")]
    return [
        b64("pässwörd ✓".encode()),
        b64(RAW_BYTES),
        {
            "current": b64(b"now"),
            "previous": b64(b"before"),
            "next": b64(b"soon"),
            "all_versions": versioned_full,
        },
        {
            "current": b64(CURRENT_KEY),
            "previous": b64(PREVIOUS_KEY),
            "next": None,
            "all_versions": [b64(CURRENT_KEY), b64(PREVIOUS_KEY)],
        },
        {"current": b64(b"only"), "previous": None, "next": None, "all_versions": [b64(b"only")]},
        {"error": "CorruptSecretError"},
        {"error": "CorruptSecretError"},
        {"error": "CorruptSecretError"},
        {"error": "CorruptSecretError"},
        {"error": "CorruptSecretError"},
        {"error": "CorruptSecretError"},
        {"error": "SecretNotFoundError"},
        BAO_URL + "/",
        vault_token,
        b64(b"from-kv2"),
    ]


class Vault:
    """This module's secrets on the shared OpenBao: a KV v1 mount, a KV v2 secret, and a JWT
    auth method standing in for Kubernetes auth (same login call: ``jwt`` and ``role``)."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.kv1 = f"interop-kv-{suffix}"
        self.kv2_path = f"secret/data/interop-{suffix}"
        self.auth_mount = f"interop-k8s-{suffix}"
        self.policy = f"interop-{suffix}"
        self.role = "reddit-service"
        bao("POST", f"sys/mounts/{self.kv1}", {"type": "kv", "options": {"version": "1"}})
        for name, secret in KV1_SECRETS.items():
            bao("POST", f"{self.kv1}/{name}", secret)
        bao("POST", self.kv2_path, {"data": KV2_SECRET})

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        bao("POST", f"sys/auth/{self.auth_mount}", {"type": "jwt"})
        bao(
            "POST",
            f"auth/{self.auth_mount}/config",
            {"jwt_validation_pubkeys": [public_pem.decode()]},
        )
        bao(
            "PUT",
            f"sys/policies/acl/{self.policy}",
            {
                "policy": f'path "{self.kv1}/*" {{ capabilities = ["read"] }}\n'
                f'path "{self.kv2_path}" {{ capabilities = ["read"] }}\n'
            },
        )
        bao(
            "POST",
            f"auth/{self.auth_mount}/role/{self.role}",
            {
                "role_type": "jwt",
                "bound_audiences": ["vault"],
                "user_claim": "sub",
                "token_policies": [self.policy],
                "token_ttl": "1h",
            },
        )
        now = int(time.time())
        claims = {"sub": "system:serviceaccount:prod:reddit-service", "aud": "vault"}
        self.service_account_jwt = jwt.encode(
            {**claims, "iat": now, "exp": now + 3600}, key, algorithm="RS256"
        )

    def paths(self) -> list[str]:
        return [f"{self.kv1}/{name}" for name in KV1_SECRETS] + [self.kv2_path]

    def queries(self) -> list[list[str]]:
        """QUERIES on this mount, the vault URL and token, and the KV v2 secret."""
        return [[method, f"{self.kv1}/{name}"] for method, name in QUERIES] + [
            ["get_vault_url", ""],
            ["get_vault_token", ""],
            ["get_simple", self.kv2_path],
        ]

    def remove(self) -> None:
        bao("DELETE", f"sys/auth/{self.auth_mount}")
        bao("DELETE", f"sys/mounts/{self.kv1}")
        bao("DELETE", f"secret/metadata/{self.kv2_path.split('/', 2)[2]}")
        bao("DELETE", f"sys/policies/acl/{self.policy}")


@pytest.fixture(scope="module")
def vault() -> Iterator[Vault]:
    vault = Vault()
    yield vault
    vault.remove()


def write_fetcher_config(
    path: Path, output: Path, keys: dict[str, str], secret_paths: list[str]
) -> str:
    lines = ["[secret-fetcher]", f"vault.url = {BAO_URL}/", f"output.path = {output}"]
    lines += [f"{key} = {value}" for key, value in keys.items()]
    lines += ["secrets ="] + [f"    {secret_path}," for secret_path in secret_paths]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_reddit_store_reads_our_fetchers_file(vault: Vault, tmp_path: Path) -> None:
    """Our ``python -m baseplate.secrets.fetcher`` writes a file that reddit's SecretsStore
    reads exactly as ours does, and as the API reference says."""
    output = tmp_path / "secrets.json"
    config_path = write_fetcher_config(
        tmp_path / "fetcher.ini", output, {"vault.auth_type": "token"}, vault.paths()
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "VAULT_TOKEN": "root"}
    done = subprocess.run(
        [sys.executable, "-m", "baseplate.secrets.fetcher", config_path, "--once"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr

    theirs = run_peer("secrets-read", str(output), request=vault.queries())
    ours = drivers.read_secrets(SecretsStore(str(output)), vault.queries())

    assert theirs == ours == expected_answers("root")


@pytest.fixture(scope="module")
def fetched(vault: Vault, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Both fetchers run once with the same config (Kubernetes-style login), each writing its
    own file in its own directory."""
    tmp_path = tmp_path_factory.mktemp("fetchers")
    token_file = tmp_path / "service-account-token"
    token_file.write_text(vault.service_account_jwt)
    owner = pwd.getpwnam("nobody")
    keys = {
        "vault.auth_type": "kubernetes",
        "vault.mount_point": vault.auth_mount,
        "vault.role": vault.role,
        "output.owner": owner.pw_name,
        "output.group": grp.getgrgid(owner.pw_gid).gr_name,
        "output.mode": "0440",
    }
    files = {}
    for side in ("reddit", "ours"):
        (tmp_path / side).mkdir()
        output = tmp_path / side / "secrets.json"
        config_path = write_fetcher_config(tmp_path / f"{side}.ini", output, keys, vault.paths())
        if side == "reddit":
            run_peer("secrets-fetch", config_path, str(token_file))
        else:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(fetcher_module, "K8S_SERVICE_ACCOUNT_TOKEN_FILE", str(token_file))
                fetcher_module.SecretFetcher(
                    fetcher_module.load_config_file(config_path)
                ).fetch_once()
        files[side] = output
    return SimpleNamespace(
        reddit=files["reddit"], ours=files["ours"], owner=(owner.pw_uid, owner.pw_gid)
    )


def test_fetchers_write_the_same_file(vault: Vault, fetched: SimpleNamespace) -> None:
    """Same layout, same JSON text (modulo the token each login got), same owner and mode;
    the one difference is a KV version 2 secret, which ours unwraps."""
    documents = {}
    for side in ("reddit", "ours"):
        path: Path = getattr(fetched, side)
        text = path.read_text()
        document = json.loads(text)
        # both write sorted keys with a two-space indent and no trailing newline
        assert text == json.dumps(document, indent=2, sort_keys=True)
        info = path.stat()
        assert (info.st_uid, info.st_gid) == fetched.owner
        assert stat.S_IMODE(info.st_mode) == 0o440
        assert os.listdir(path.parent) == ["secrets.json"]  # no temporary file left behind
        token = document["vault"]["token"]
        assert document["vault_token"] == token
        lookup = bao("GET", "auth/token/lookup-self", token=token)["data"]
        assert vault.policy in lookup["policies"]
        document["vault"]["token"] = document["vault_token"] = "TOKEN"
        documents[side] = document

    theirs, ours = documents["reddit"], documents["ours"]
    # Reddit's fetcher stores Vault's whole KV v2 answer ({"data": ..., "metadata": ...});
    # ours unwraps it so the secret reads like any other.
    assert theirs["secrets"][vault.kv2_path]["data"] == ours["secrets"][vault.kv2_path]
    assert ours["secrets"][vault.kv2_path] == KV2_SECRET
    assert set(theirs["secrets"][vault.kv2_path]) == {"data", "metadata"}
    del theirs["secrets"][vault.kv2_path], ours["secrets"][vault.kv2_path]
    assert theirs == ours
    assert sorted(ours) == ["secrets", "vault", "vault_token"]
    assert ours["vault"] == {"token": "TOKEN", "url": BAO_URL + "/"}
    assert ours["secrets"] == {f"{vault.kv1}/{name}": KV1_SECRETS[name] for name in KV1_SECRETS}


def test_our_store_reads_reddit_fetchers_file(vault: Vault, fetched: SimpleNamespace) -> None:
    """The file reddit's own fetcher wrote reads the same with our SecretsStore as with
    reddit's (the KV v2 secret is left out: reddit's fetcher keeps it wrapped)."""
    queries = vault.queries()[:-1]
    token = json.loads(fetched.reddit.read_text())["vault"]["token"]

    theirs = run_peer("secrets-read", str(fetched.reddit), request=queries)
    ours = drivers.read_secrets(SecretsStore(str(fetched.reddit)), queries)

    assert theirs == ours == expected_answers(token)[:-1]


# --- crypto --------------------------------------------------------------------------------


def secret_spec(current: bytes, previous: bytes | None = None, next: bytes | None = None) -> dict:
    spec = {"current": base64.b64encode(current).decode()}
    if previous is not None:
        spec["previous"] = base64.b64encode(previous).decode()
    if next is not None:
        spec["next"] = base64.b64encode(next).decode()
    return spec


SIGNING_KEYS = [b"hunter2", bytes(range(32)), "sïgnïng ✓".encode()]
OTHER_KEY = b"not-the-key"
MESSAGES = ["", "Hello, world!", "t2_1w72:reset-password:1559347200", "ünïcödé ✓ 💥", "x" * 5000]
MAX_AGES = [60, 3600, 30 * DAY, 3650 * DAY]
EXPIRED_AGES = [-1, -DAY]


def sign_cases() -> list[dict[str, Any]]:
    cases = []
    for index, message in enumerate(MESSAGES):
        key = SIGNING_KEYS[index % len(SIGNING_KEYS)]
        for max_age in MAX_AGES + EXPIRED_AGES:
            cases.append({"secret": secret_spec(key), "message": message, "max_age": max_age})
    return cases


def recode(signature: str, change: Any) -> str:
    raw = bytearray(base64.urlsafe_b64decode(signature))
    return base64.urlsafe_b64encode(bytes(change(raw))).decode()


def flip_last_byte(raw: bytearray) -> bytearray:
    raw[-1] ^= 0x01
    return raw


def set_version(raw: bytearray) -> bytearray:
    raw[0] = 2
    return raw


def later_expiration(raw: bytearray) -> bytearray:
    raw[3:7] = struct.pack("<I", struct.unpack("<I", bytes(raw[3:7]))[0] + 1000)
    return raw


def validation_cases(case: dict[str, Any], signature: str) -> list[tuple[dict[str, Any], str]]:
    """Validations of ``signature`` (made for ``case``), each with the outcome it must have
    (``ok``: valid, ``expired``: valid digest but expired, else the exception's name)."""
    key = base64.b64decode(case["secret"]["current"])
    message = case["message"]
    fresh = case["max_age"] > 0
    valid = "ok" if fresh else "expired"

    def check(secret: dict[str, Any], text: str, sig: str, outcome: str) -> tuple[dict, str]:
        return {"secret": secret, "message": text, "signature": sig}, outcome

    return [
        check(case["secret"], message, signature, valid),
        # key rotation: the signing key is now the previous or the next version
        check(secret_spec(OTHER_KEY, previous=key), message, signature, valid),
        check(secret_spec(OTHER_KEY, next=key), message, signature, valid),
        check(secret_spec(OTHER_KEY), message, signature, "IncorrectSignatureError"),
        check(case["secret"], message + "!", signature, "IncorrectSignatureError"),
        check(
            case["secret"], message, recode(signature, flip_last_byte), "IncorrectSignatureError"
        ),
        check(
            case["secret"], message, recode(signature, later_expiration), "IncorrectSignatureError"
        ),
        check(case["secret"], message, recode(signature, set_version), "UnreadableSignatureError"),
        check(
            case["secret"], message, recode(signature, lambda r: r[:-4]), "UnreadableSignatureError"
        ),
        check(case["secret"], message, signature[:-3] + "!!!", "UnreadableSignatureError"),
    ]


def outcome_of(answer: dict[str, Any]) -> str:
    if "error" not in answer:
        return "ok"
    return "expired" if answer["error"] == "ExpiredSignatureError" else answer["error"]


def expiration_of(signature: str) -> int:
    expiration: int = struct.unpack("<I", base64.urlsafe_b64decode(signature)[3:7])[0]
    return expiration


def test_signatures_validate_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = sign_cases()
    our_run = drivers.run_crypto(crypto, secrets, {"sign": cases, "validate": []})
    our_checks = [
        check
        for case, signature in zip(cases, our_run["signatures"], strict=True)
        for check in validation_cases(case, signature)
    ]

    peer = run_peer(
        "crypto", request={"sign": cases, "validate": [check for check, _ in our_checks]}
    )

    # Reddit validates our signatures (and their tampered copies) as they must be.
    assert [outcome_of(answer) for answer in peer["validations"]] == [o for _, o in our_checks]
    # ... and exactly as we validate them ourselves, expirations included.
    ours_on_ours = drivers.run_crypto(
        crypto, secrets, {"sign": [], "validate": [check for check, _ in our_checks]}
    )["validations"]
    assert ours_on_ours == peer["validations"]
    for (check, outcome), answer in zip(our_checks, ours_on_ours, strict=True):
        if outcome in ("ok", "expired"):
            assert answer["expiration"] == expiration_of(check["signature"])

    # We validate reddit's signatures (and their tampered copies) as they must be.
    their_checks = [
        check
        for case, signature in zip(cases, peer["signatures"], strict=True)
        for check in validation_cases(case, signature)
    ]
    ours_on_theirs = drivers.run_crypto(
        crypto, secrets, {"sign": [], "validate": [check for check, _ in their_checks]}
    )["validations"]
    assert [outcome_of(answer) for answer in ours_on_theirs] == [o for _, o in their_checks]

    # Signed at the same moment, our signature is reddit's byte for byte.
    for case, signature in zip(cases, peer["signatures"], strict=True):
        signed_at = expiration_of(signature) - case["max_age"] + 0.25
        monkeypatch.setattr(crypto, "time", SimpleNamespace(time=lambda at=signed_at: at))
        ours = drivers.run_crypto(crypto, secrets, {"sign": [case], "validate": []})
        assert ours["signatures"] == [signature]


# --- experiments ---------------------------------------------------------------------------


def experiments_config(now: float) -> dict[str, Any]:
    """Running experiments of every type both implementations (and the reference) know."""

    def experiment(
        experiment_id: int, name: str, kind: str, body: dict[str, Any], **top: Any
    ) -> dict[str, Any]:
        config = {
            "id": experiment_id,
            "name": name,
            "owner": "interop",
            "type": kind,
            "version": "3",
            "start_ts": now - DAY,
            "stop_ts": now + DAY,
            "experiment": body,
        }
        config.update(top)
        return config

    everyone = {"logged_in": [True, False]}
    half = [{"name": "treatment", "size": 0.5}, {"name": "control", "size": 0.5}]
    configs = [
        experiment(
            101,
            "r2_buttons",
            "r2",
            {
                # control_2 is over the 1/n cap: it is clamped the same way on both sides
                "variants": {"red": 10, "blue": 20, "control_1": 15, "control_2": 30},
                "targeting": everyone,
                "overrides": {
                    "user_name": {"Admin1": "blue", "qa_red": "red"},
                    "url_features": {"buttons_red": "red", "nope": "not_a_variant"},
                },
            },
        ),
        experiment(
            102,
            "r2_loid_seeded",
            "r2",
            {
                "variants": {"a": 33, "b": 33},
                "bucket_val": "loid",
                "seed": "reseeded-2019",
                "targeting": {"subreddit": ["Pics", "funny"], "__case_sensitive__": ["subreddit"]},
            },
        ),
        experiment(
            103,
            "r2_newer_accounts",
            "r2",
            {
                "variants": {"x": 50, "y": 50},
                "targeting": {"logged_in": [True]},
                "newer_than": now - 30 * DAY,
            },
        ),
        experiment(
            104,
            "r2_posts",
            "r2",
            {
                "variants": {"hot": 25.5, "new": 12.25},
                "bucket_val": "post_id",
                "targeting": {"user_roles": ["employee", "beta"]},
            },
        ),
        experiment(
            201,
            "feature_dark_mode",
            "feature_flag",
            {
                "variants": {"active": 37.5},
                "targeting": everyone,
                "overrides": {"user_name": {"admin1": "active"}},
            },
        ),
        experiment(
            301,
            "forced_everyone",
            "r2",
            {"variants": {"blue": 50}, "targeting": everyone},
            global_override="blue",
        ),
        experiment(
            302, "forced_nobody", "single_variant", {"variants": half}, global_override=None
        ),
        experiment(
            303, "disabled_r2", "r2", {"variants": {"a": 50}, "targeting": everyone}, enabled=False
        ),
        experiment(
            304,
            "expired_simple",
            "single_variant",
            {"experiment_version": 1, "variants": half},
            start_ts=now - 3 * DAY,
            stop_ts=now - DAY,
        ),
        experiment(305, "unknown_type", "quantum", {}),
        experiment(
            401,
            "single_onboarding",
            "single_variant",
            {
                "experiment_version": 2,
                "shuffle_version": 1,
                "variants": [{"name": "treatment", "size": 0.3}, {"name": "control", "size": 0.3}],
                "targeting": {
                    "ALL": [
                        {"EQ": {"field": "logged_in", "value": True}},
                        {"NOT": {"EQ": {"field": "subreddit", "values": ["nsfw_stuff"]}}},
                    ]
                },
                "overrides": [
                    {"treatment": {"EQ": {"field": "user_name", "values": ["Admin1"]}}},
                    {"control": {"ANY": [{"EQ": {"field": "is_employee", "value": True}}]}},
                ],
            },
        ),
        experiment(
            402,
            "multi_feed",
            "multi_variant",
            {
                "experiment_version": 5,
                "bucket_val": "loid",
                "bucket_seed": "feed-seed",
                "variants": [
                    {"name": "v1", "size": 0.1},
                    {"name": "v2", "size": 0.25},
                    {"name": "v3", "size": 0.333},
                ],
                "targeting": {
                    "ANY": [
                        {"EQ": {"field": "logged_in", "value": False}},
                        {"EQ": {"field": "app_name", "values": ["ios", "android"]}},
                    ]
                },
            },
        ),
        experiment(
            403,
            "rollout_video",
            "feature_rollout",
            {
                "experiment_version": 1,
                "bucket_val": "device_id",
                "num_buckets": 100,
                "variants": [{"name": "enabled", "size": 0.42}],
            },
        ),
        experiment(
            404,
            "single_quiet",
            "single_variant",
            {
                "experiment_version": 1,
                "log_bucketing": False,
                "variants": half,
                "targeting": {"OVERRIDE": True},
            },
        ),
        experiment(
            405,
            "single_bad_targeting",
            "single_variant",
            {"experiment_version": 1, "variants": half, "targeting": {"XOR": []}},
        ),
    ]
    return {config["name"]: config for config in configs}


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def user_inputs(rng: random.Random, now: float) -> dict[str, Any]:
    """The keyword arguments a request passes for one user (logged in or out)."""
    loid = "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        for _ in range(18)
    )
    logged_in = rng.random() < 0.7
    user_id = f"t2_{base36(rng.randrange(36**7))}" if logged_in else loid
    if rng.random() < 0.02:
        user_id = None  # nothing to bucket on: no variant, no event
    special_names = ["Admin1", "admin1", "qa_red"]
    return {
        "user_id": user_id,
        "loid": loid,
        "logged_in": logged_in,
        "subreddit": rng.choice(["pics", "Pics", "funny", "FUNNY", "nsfw_stuff", "AskReddit"]),
        "user_name": rng.choice(special_names)
        if rng.random() < 0.03
        else f"u{rng.randrange(10**6)}",
        "url_features": rng.choice([["buttons_red"], ["nope"]]) if rng.random() < 0.05 else [],
        "user_created": now - rng.uniform(0, 60) * DAY,
        "post_id": rng.randrange(10**9),
        "device_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "user_roles": rng.choice([[], ["employee"], ["beta", "mod"]]),
        "is_employee": rng.random() < 0.05,
        "cookie_created_timestamp": int(now * 1000) - rng.randrange(10**9),
        "app_name": rng.choice(["web", "ios", "android"]),
    }


def experiment_requests(names: list[str], now: float, count: int = 1000) -> list[list[dict]]:
    """One request per user, checking every experiment; some repeat calls (deduplicated
    events), force an r2 override after the bucketed variant, or suppress an event first."""
    rng = random.Random(20190601)
    requests = []
    for index in range(count):
        kwargs = user_inputs(rng, now)
        calls: list[dict[str, Any]] = [{"name": name, "kwargs": kwargs} for name in names]
        if index % 10 == 0:
            calls.append({"name": "r2_buttons", "kwargs": kwargs})
            calls.append(
                {"name": "r2_buttons", "kwargs": {**kwargs, "url_features": ["buttons_red"]}}
            )
        if index % 10 == 1:
            calls.insert(0, {"name": "single_onboarding", "kwargs": kwargs, "override": False})
        if index % 25 == 2:  # parameter names are case insensitive for r2 experiments
            mixed = {key.title(): value for key, value in kwargs.items()}
            calls.append({"name": "r2_loid_seeded", "kwargs": mixed})
        requests.append(calls)
    return requests


def test_experiments_choose_the_same_variants_and_events(tmp_path: Path) -> None:
    now = time.time()
    config = experiments_config(now)
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(config))
    requests = experiment_requests([*config, "missing"], now)

    theirs = run_peer("experiments", str(path), request=requests)
    ours = drivers.run_experiments(experiments, file_watcher, events, str(path), requests)
    ours = json.loads(json.dumps(ours))  # tuples and the like as JSON has them

    assert ours["valid"] == theirs["valid"]
    for index, (mine, peer) in enumerate(zip(ours["requests"], theirs["requests"], strict=True)):
        assert mine == peer, f"request {index}"
    assert len(ours["requests"]) == len(theirs["requests"]) == len(requests)

    # The comparison covers real assignments: each experiment has its variants and no-variant
    # outcomes, the events are those of the logging experiments only.
    chosen: dict[str, set[Any]] = {}
    event_names = set()
    for calls, answer in zip(requests, ours["requests"], strict=True):
        for call, variant in zip(calls, answer["variants"], strict=True):
            chosen.setdefault(call["name"], set()).add(variant)
        event_names.update(event["experiment"][1] for event in answer["events"])
    assert chosen["r2_buttons"] == {"red", "blue", "control_1", "control_2", None}
    assert chosen["multi_feed"] == {"v1", "v2", "v3", None}
    assert chosen["forced_everyone"] == {"blue"}
    for name in ("forced_nobody", "disabled_r2", "expired_simple", "unknown_type", "missing"):
        assert chosen[name] == {None}
    assert event_names == {
        "r2_buttons",
        "r2_loid_seeded",
        "r2_newer_accounts",
        "r2_posts",
        "single_onboarding",
        "multi_feed",
        "rollout_video",
    }
    first_event = ours["requests"][0]["events"][0]
    assert sorted(first_event) == [
        "app_name",
        "cookie_created_timestamp",
        "event_type",
        "experiment",
        "inputs",
        "logged_in",
        "span",
        "user_id",
        "variant",
    ]
    assert first_event["event_type"] == "choose"


# --- events --------------------------------------------------------------------------------


V1_EVENTS = [
    {
        "topic": "interop_events",
        "type": "click",
        "timestamp": [2024, 2, 29, 23, 59, 58, 0, True],
        "id": "6f1c7a4e-3c1d-4a51-9a3e-0a9e5b7c2d10",
        "fields": [
            ["user_id", "t2_abc", "NORMAL"],
            ["ip", "203.0.113.7", "OBFUSCATED"],
            ["referrer", "https://www.reddit.com/r/pics/?utm=x&y=ü", "HIGH_CARDINALITY"],
            ["count", 0, "NORMAL"],
            ["ratio", 0.25, "NORMAL"],
            ["flag", False, "NORMAL"],
            ["nothing", None, "NORMAL"],
            ["empty", "", "OBFUSCATED"],
            ["nested", {"b": [1, 2, {"c": None}], "a": "ünïcödé ✓ 💥"}, "NORMAL"],
            ["big", 2**53 + 1, "HIGH_CARDINALITY"],
            ["user_id", "t2_def", "OBFUSCATED"],
            ["quote", 'say "hi"\n\t\\', "NORMAL"],
        ],
    },
    {
        "topic": "t",
        "type": "e",
        "timestamp": [1970, 1, 1, 0, 0, 0, 0, False],
        "id": "00000000-0000-0000-0000-000000000000",
        "fields": [],
    },
    {
        "topic": "screenview",
        "type": "view",
        "timestamp": [2038, 1, 19, 3, 14, 8, 0, False],
        "id": "not-a-uuid",
        "fields": [["session_id", "s" * 200, "OBFUSCATED"]],
    },
]

V2_EVENTS = [
    {
        "source": "baseplate",
        "action": "test",
        "noun": "baseplate",
        "client_timestamp": 1559347200123,
        "uuid": "6f1c7a4e-3c1d-4a51-9a3e-0a9e5b7c2d10",
        "user": {"id": "t2_abc", "logged_in": True, "created_timestamp": -1},
        "score": 0.1,
        "count": -(2**31),
        "tags": ["a", "ünïcödé ✓", ""],
        "extra": {"z": 2**62, "a": 0},
        "flags": -7,
        "kind": 300,
        "blob": base64.b64encode(bytes(range(256))).decode(),
    },
    {"source": "s", "action": "a", "noun": "n"},
]

EDGE_REQUESTS = [
    {"loid": "t2_abc", "created_ms": 1559347200000, "session": "beefdead", "token": "eyJ.x.y"},
]


def test_v1_and_v2_events_serialize_to_the_same_bytes() -> None:
    request = {"v1": V1_EVENTS, "v2": V2_EVENTS, "v2_edge": EDGE_REQUESTS}

    theirs = run_peer("events", request=request)
    ours = drivers.serialize_events(events, ttypes, request)

    assert ours == theirs
    first = json.loads(base64.b64decode(ours["v1"][0]))
    assert first["event_ts"] == 1709251198000
    assert first["payload"]["obfuscated_data"] == {"ip": "203.0.113.7", "user_id": "t2_def"}
    assert "nothing" not in first["payload"] and "empty" not in first["payload"]
    assert json.loads(base64.b64decode(ours["v2"][1])) == {
        "1": {"str": "s"},
        "2": {"str": "a"},
        "3": {"str": "n"},
    }
