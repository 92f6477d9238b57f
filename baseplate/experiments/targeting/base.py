"""The targeting interface."""

from __future__ import annotations

from typing import Any


class Targeting:
    """Decides from a variant call's keyword arguments whether a request is targeted."""

    def evaluate(self, **kwargs: Any) -> bool:
        """Return whether the inputs match this targeting."""
        raise NotImplementedError
