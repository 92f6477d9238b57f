"""An experiment that always returns the same variant (disabled or globally overridden)."""

from __future__ import annotations

from typing import Any, Optional

from baseplate.experiments.providers.base import Experiment


class ForcedVariantExperiment(Experiment):
    """An experiment that always returns a specified variant.

    .. deprecated:: 0.27

    Should not log bucketing events to the event pipeline. Note that
    ForcedVariantExperiments are not directly configured, rather they are used when an
    experiment is disabled or when "global_override" is set in the base config.

    :param variant: The variant :py:meth:`variant` always returns (may be ``None``).
    :param id: (Optional) The id of the experiment this stands in for; likewise
        ``name``, ``owner`` and ``version``, for exposure events.
    """

    def __init__(
        self,
        variant: Optional[str],
        *,
        id: Optional[int] = None,
        name: Optional[str] = None,
        owner: Optional[str] = None,
        version: Optional[str] = None,
    ) -> None:
        self._variant = variant
        self.id = id
        self.name = name
        self.owner = owner
        self.version = version

    def variant(self, **kwargs: Any) -> Optional[str]:
        """Return the forced variant, whatever the arguments."""
        return self._variant

    def should_log_bucketing(self) -> bool:
        """Never: a forced variant is not a bucketing decision."""
        return False
