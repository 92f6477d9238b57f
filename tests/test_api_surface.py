"""The documented API surface of baseplate 0.28, checked name by name.

One test per documented module: every public name the API reference gives is importable
from its documented path, with the documented parameter names (and, where the reference
gives them, their order and defaults); the reference's examples that can run here are run
against real parts (a UDP socket for statsd, POSIX message queues, files on disk).
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EMPTY = inspect.Parameter.empty
VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL


def documented(module: str, name: str) -> Any:
    """``module.name``, failing with the documented path when it is missing."""
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.{name} is documented but missing"
    return getattr(mod, name)


def assert_params(func: Any, *expected: str | tuple[str, Any], skip_self: bool = True) -> None:
    """The leading parameters of ``func`` are ``expected``, in order.

    Each entry is a name, or ``(name, default)`` when the reference gives a default
    (``EMPTY`` for a parameter documented as required). ``"*args"`` / ``"**kwargs"`` stand for
    variadic parameters of any name. Extra trailing parameters with defaults are allowed:
    documented calls keep working.
    """
    params = list(inspect.signature(func).parameters.values())
    if skip_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    for position, spec in enumerate(expected):
        name, default = spec if isinstance(spec, tuple) else (spec, None)
        assert position < len(params), f"{func.__qualname__}: missing parameter {name!r}"
        param = params[position]
        if name == "**kwargs":
            assert param.kind is VAR_KEYWORD, f"{func.__qualname__}: expected **kwargs"
            continue
        if name == "*args":
            assert param.kind is VAR_POSITIONAL, f"{func.__qualname__}: expected *args"
            continue
        assert param.name == name, (
            f"{func.__qualname__}: parameter {position} is {param.name!r}, documented {name!r}"
        )
        assert param.kind in (param.POSITIONAL_OR_KEYWORD, param.POSITIONAL_ONLY), (
            f"{func.__qualname__}: {name!r} must be passable by position"
        )
        if isinstance(spec, tuple):
            if default is EMPTY:
                assert param.default is EMPTY, f"{func.__qualname__}: {name!r} is required"
            else:
                assert param.default == default, (
                    f"{func.__qualname__}: {name!r} defaults to {param.default!r}, "
                    f"documented {default!r}"
                )
    for param in params[len(expected) :]:
        assert param.kind in (VAR_KEYWORD, VAR_POSITIONAL) or param.default is not EMPTY, (
            f"{func.__qualname__}: undocumented required parameter {param.name!r}"
        )


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ---------------------------------------------------------------------------------------
# 2.1 baseplate
# ---------------------------------------------------------------------------------------


def test_baseplate_package() -> None:
    assert_params(
        documented("baseplate", "metrics_client_from_config"), ("raw_config", EMPTY)
    )
    assert_params(
        documented("baseplate", "tracing_client_from_config"),
        ("raw_config", EMPTY),
        ("log_if_unconfigured", True),
    )
    assert_params(
        documented("baseplate", "error_reporter_from_config"),
        ("raw_config", EMPTY),
        ("module_name", EMPTY),
    )
    # The reference spells it baseplate.thrift_pool_from_config (2.14.1).
    thrift_pool_from_config = documented("baseplate", "thrift_pool_from_config")
    assert_params(thrift_pool_from_config, "app_config", "prefix", "**kwargs")
    pool = thrift_pool_from_config(
        {"example_service.endpoint": "127.0.0.1:2014", "example_service.size": "3"},
        "example_service.",
    )
    from baseplate.thrift_pool import ThriftConnectionPool

    assert isinstance(pool, ThriftConnectionPool)
    assert pool.size == 3
