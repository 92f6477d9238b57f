"""Legacy feature flags: an r2-style experiment with the single variant "active"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from baseplate.experiments.providers.r2 import R2Experiment


class FeatureFlag(R2Experiment):
    """An experiment with a single variant "active".

    .. deprecated:: 0.27
       Use SimpleExperiment with RolloutVariantSet instead.

    Does not log bucketing events to the event pipeline. Use this type of experiment if
    you just want to control access to a feature but do not want to run an actual
    experiment, for example to slowly roll out a new feature to a % of users, or to
    restrict a new feature to certain subreddits.

    The config dict has the same values as
    :py:class:`~baseplate.experiments.providers.r2.R2Experiment`, except that
    **variants** may only contain the variant named "active".

    :raises ValueError: The configuration is malformed (including variants other than
        "active"); the message names the key.
    """

    @classmethod
    def from_dict(
        cls,
        id: int,
        name: str,
        owner: Optional[str],
        version: Optional[str],
        config: Mapping[str, Any],
    ) -> FeatureFlag:
        """Parse the "experiment" config dict and return a new feature flag."""
        variants = config.get("variants", {})
        if isinstance(variants, dict) and set(variants) - {"active"}:
            others = ", ".join(sorted(set(variants) - {"active"}))
            raise ValueError(
                f"feature flag {name!r}: experiment.variants may only contain 'active', "
                f"found {others}"
            )
        return super().from_dict(id=id, name=name, owner=owner, version=version, config=config)

    def should_log_bucketing(self) -> bool:
        """Never: feature flags do not log bucketing events."""
        return False
