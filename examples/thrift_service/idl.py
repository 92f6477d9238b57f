"""The Greeter IDL compiled to Python on first use.

The generated code is not committed: :func:`greeter_module` runs the Thrift compiler
(``thrift``, Debian package ``thrift-compiler``) into ``examples/thrift_service/gen/`` when
the generated code is missing or older than ``greeter.thrift``, then imports it.
"""

from __future__ import annotations

import fcntl
import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import baseplate.thrift

HERE = Path(__file__).resolve().parent
IDL = HERE / "greeter.thrift"
GEN_DIR = HERE / "gen"
#: Where ``include "baseplate.thrift"`` is found.
BASEPLATE_IDL_DIR = Path(baseplate.thrift.__file__).resolve().parent


def _is_fresh(generated: Path) -> bool:
    return generated.exists() and generated.stat().st_mtime >= IDL.stat().st_mtime


def compile_idl() -> Path:
    """Generate the Python code for ``greeter.thrift`` if it is missing or stale."""
    generated = GEN_DIR / "greeter" / "Greeter.py"
    if _is_fresh(generated):
        return GEN_DIR
    compiler = shutil.which("thrift")
    if compiler is None:
        raise RuntimeError(
            "the Thrift compiler `thrift` is not installed (Debian: apt-get install "
            "thrift-compiler); it is needed to generate the Greeter code from " + str(IDL)
        )
    GEN_DIR.mkdir(exist_ok=True)
    # Several processes (the demo's services, a docs build) may want the code at once:
    # one compiles while the others wait, so nobody imports a half-written module.
    with open(GEN_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_fresh(generated):
            subprocess.run(
                [compiler, "--gen", "py", "-I", str(BASEPLATE_IDL_DIR), "-out", str(GEN_DIR),
                 str(IDL)],
                check=True,
            )
    return GEN_DIR


def greeter_module() -> ModuleType:
    """Return the generated ``greeter.Greeter`` module (``Client``, ``Processor``, ``Iface``)."""
    gen_dir = str(compile_idl())
    if gen_dir not in sys.path:
        sys.path.insert(0, gen_dir)
    return importlib.import_module("greeter.Greeter")


def greeter_types() -> ModuleType:
    """Return the generated ``greeter.ttypes`` module (``NameTooLong``)."""
    greeter_module()
    return importlib.import_module("greeter.ttypes")
