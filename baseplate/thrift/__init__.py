"""Baseplate's own Thrift definitions.

``baseplate.thrift`` holds the IDL (``baseplate.thrift``: the ``BaseplateService``
health-check service and the ``Edge-Request`` structs) and the Python code generated from it
under :mod:`baseplate.thrift.gen.baseplate` by ``scripts/gen-thrift.sh``. The 0.28 module
paths keep working: ``baseplate.thrift.BaseplateService``, ``baseplate.thrift.ttypes`` and
``baseplate.thrift.constants`` are the generated modules themselves.

Service IDLs extend it with ``include "baseplate.thrift"`` and
``service MyService extends baseplate.BaseplateService``; the code generated for them imports
``baseplate.thrift.BaseplateService`` and ``baseplate.thrift.ttypes`` (the IDL's Python
namespace is ``baseplate.thrift``), which resolve to the modules here.
"""

import sys
from typing import Any

from baseplate.thrift.gen.baseplate import BaseplateService, constants, ttypes

# The generated modules are registered under their 0.28 names too (not copied), so
# `import baseplate.thrift.ttypes` gives the very classes the generated service code uses.
for _module in (BaseplateService, constants, ttypes):
    sys.modules[__name__ + "." + _module.__name__.rsplit(".", 1)[1]] = _module


def _context_processor(handler: Any) -> Any:
    """``BaseplateService.ContextProcessor(handler)``: the processor 0.28's compiler generated,
    i.e. :class:`~baseplate.integration.thrift.ContextProcessor` around the generated one."""
    from baseplate.integration.thrift import ContextProcessor

    return ContextProcessor(BaseplateService.Processor(handler))


# The stock compiler generates no ContextProcessor; the one service shipped here gets it back
# so that 0.28's `BaseplateService.ContextProcessor(handler)` keeps working.
setattr(BaseplateService, "ContextProcessor", _context_processor)  # noqa: B010

__all__ = ["BaseplateService", "constants", "ttypes"]
