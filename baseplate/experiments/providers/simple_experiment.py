"""Simple experiments: a variant set plus targeting, overrides and a time window."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

from baseplate.experiments.providers.base import (
    DEFAULT_NUM_BUCKETS,
    Experiment,
    calculate_bucket,
)
from baseplate.experiments.targeting.base import Targeting
from baseplate.experiments.targeting.tree_targeting import create_targeting_tree
from baseplate.experiments.variant_sets.base import VariantSet
from baseplate.experiments.variant_sets.multi_variant_set import MultiVariantSet
from baseplate.experiments.variant_sets.rollout_variant_set import RolloutVariantSet
from baseplate.experiments.variant_sets.single_variant_set import SingleVariantSet

logger = logging.getLogger(__name__)

#: The experiment ``type`` values handled by :py:class:`SimpleExperiment`.
VARIANT_SET_TYPES: dict[str, Callable[..., VariantSet]] = {
    "single_variant": SingleVariantSet,
    "multi_variant": MultiVariantSet,
    "feature_rollout": RolloutVariantSet,
}

Override = dict[str, Targeting]


def _generate_targeting(name: str, targeting_config: Any) -> Targeting:
    """Build the targeting tree: everyone when not configured, nobody when malformed."""
    if targeting_config is None:
        return create_targeting_tree({"OVERRIDE": True})
    try:
        return create_targeting_tree(targeting_config)
    except ValueError as exc:
        logger.error("Experiment %s: invalid targeting, targeting nobody: %s", name, exc)
        return create_targeting_tree({"OVERRIDE": False})


def _generate_overrides(name: str, override_config: Any) -> Optional[list[Override]]:
    """Build the ordered list of ``{variant: targeting tree}`` overrides.

    The first override whose tree matches wins. A malformed list disables all overrides;
    a malformed entry is skipped; an entry with a malformed tree never matches. Each
    problem is logged.
    """
    if not override_config:
        return None
    if not isinstance(override_config, list):
        logger.error("Experiment %s: overrides must be a list, ignoring them.", name)
        return None

    overrides = []
    for entry in override_config:
        if not isinstance(entry, dict) or len(entry) != 1:
            logger.error(
                "Experiment %s: ignoring override %r, expected an object with a single "
                "variant name key.",
                name,
                entry,
            )
            continue
        ((variant, tree_config),) = entry.items()
        overrides.append({variant: _generate_targeting(name, tree_config)})
    return overrides


class SimpleExperiment(Experiment):
    """A basic experiment choosing from a set of variants.

    Simple experiments are meant to be used in conjunction with a VariantSet. This class
    serves as the replacement for the legacy r2 and feature_flag providers.

    The "experiment" config dict has these values:

    * **variants**: list of ``{"name": ..., "size": ...}``, sizes as fractions of 1.
    * **experiment_version**: (Required) the version of this configuration.
    * **shuffle_version**: (Optional) part of the default seed; changing it rebuckets.
    * **bucket_seed**: (Optional) the seed; defaults to ``"<id>.<name>.<shuffle_version>"``.
    * **bucket_val**: (Optional) the keyword argument bucketed on; defaults to "user_id".
    * **targeting**: (Optional) a targeting tree (see
      :py:mod:`baseplate.experiments.targeting.tree_targeting`); everyone by default, nobody
      if the tree is malformed.
    * **overrides**: (Optional) a list of ``{variant_name: targeting tree}``; the first
      match forces that variant.
    * **log_bucketing**: (Optional) whether to log bucketing events; defaults to true.
    * **num_buckets**: (Optional) defaults to 1000.

    :raises ValueError: The configuration is malformed; the message names the key.
    """

    def __init__(
        self,
        id: int,
        name: str,
        owner: Optional[str],
        start_ts: float,
        stop_ts: float,
        config: Mapping[str, Any],
        experiment_version: Any,
        shuffle_version: Any,
        variant_set: VariantSet,
        bucket_seed: Optional[str],
        bucket_val: str,
        targeting: Targeting,
        overrides: Optional[list[Override]],
        enabled: bool = True,
        log_bucketing: bool = True,
        num_buckets: int = DEFAULT_NUM_BUCKETS,
    ) -> None:
        if not experiment_version:
            raise ValueError(f"experiment {name!r}: experiment.experiment_version is missing")
        self.id = id
        self.name = name
        self.owner = owner
        self.num_buckets = num_buckets
        self.start_ts = start_ts
        self.stop_ts = stop_ts
        self.enabled = enabled
        self.bucket_val = bucket_val
        self.version = experiment_version
        self.experiment_version = experiment_version
        self.shuffle_version = shuffle_version
        self.variant_set = variant_set
        self._log_bucketing = log_bucketing
        self._targeting = targeting
        self._overrides = overrides
        self._seed = bucket_seed
        if self._seed is None:
            self._seed = f"{id}.{name}.{shuffle_version}"

    @classmethod
    def from_dict(
        cls,
        id: int,
        name: str,
        owner: Optional[str],
        start_ts: float,
        stop_ts: float,
        config: Mapping[str, Any],
        variant_type: str,
        enabled: bool = True,
    ) -> SimpleExperiment:
        """Parse the "experiment" config dict of an experiment of type ``variant_type``."""
        variant_set_type = VARIANT_SET_TYPES.get(variant_type)
        if variant_set_type is None:
            raise ValueError(f"experiment {name!r}: unknown experiment type {variant_type!r}")

        num_buckets = config.get("num_buckets", DEFAULT_NUM_BUCKETS)
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
            raise ValueError(
                f"experiment {name!r}: experiment.num_buckets must be a positive integer"
            )
        try:
            variant_set = variant_set_type(config.get("variants"), num_buckets=num_buckets)
        except ValueError as exc:
            raise ValueError(f"experiment {name!r}: experiment.variants: {exc}") from None

        bucket_val = config.get("bucket_val", "user_id")
        if not isinstance(bucket_val, str) or not bucket_val:
            raise ValueError(f"experiment {name!r}: experiment.bucket_val must be a string")
        bucket_seed = config.get("bucket_seed")
        if bucket_seed is not None and not isinstance(bucket_seed, str):
            raise ValueError(f"experiment {name!r}: experiment.bucket_seed must be a string")

        return cls(
            id=id,
            name=name,
            owner=owner,
            start_ts=start_ts,
            stop_ts=stop_ts,
            enabled=enabled,
            config=config,
            experiment_version=config.get("experiment_version"),
            shuffle_version=config.get("shuffle_version"),
            variant_set=variant_set,
            bucket_seed=bucket_seed,
            bucket_val=bucket_val,
            num_buckets=num_buckets,
            log_bucketing=bool(config.get("log_bucketing", True)),
            targeting=_generate_targeting(name, config.get("targeting")),
            overrides=_generate_overrides(name, config.get("overrides")),
        )

    @property
    def seed(self) -> str:
        """The bucketing seed."""
        return str(self._seed)

    def get_unique_id(self, **kwargs: Any) -> Optional[str]:
        """Return ``"<name>:<bucket_val>:<value>"`` or ``None`` without a bucketing value."""
        if kwargs.get(self.bucket_val):
            return ":".join([str(self.name), self.bucket_val, str(kwargs[self.bucket_val])])
        return None

    def should_log_bucketing(self) -> bool:
        """Whether or not this experiment should log bucketing events."""
        return self._log_bucketing

    def is_targeted(self, **kwargs: Any) -> bool:
        """Return if kwargs match targeting parameters for this experiment."""
        return self._targeting.evaluate(**kwargs)

    def get_override(self, **kwargs: Any) -> Optional[str]:
        """Return the variant forced by the first matching override, if any."""
        for override in self._overrides or ():
            for variant, targeting in override.items():
                if targeting.evaluate(**kwargs):
                    return variant
        return None

    def variant(self, **kwargs: Any) -> Optional[str]:
        """Return the variant for these inputs.

        ``None`` outside the experiment's time window, when disabled, without a bucketing
        value, or when not targeted; otherwise an override or the bucket's variant.
        """
        if not self._enabled_now():
            return None

        lower_kwargs = {key.lower(): value for key, value in kwargs.items()}
        if lower_kwargs.get(self.bucket_val) is None:
            logger.debug(
                "No %s given to choose a variant of experiment %s.", self.bucket_val, self.name
            )
            return None

        override = self.get_override(**kwargs)
        if override:
            return override

        if not self.is_targeted(**kwargs):
            return None

        bucket = self._calculate_bucket(lower_kwargs[self.bucket_val])
        return self._choose_variant(bucket)

    def _enabled_now(self) -> bool:
        return bool(self.enabled) and self.start_ts <= time.time() < self.stop_ts

    def _calculate_bucket(self, bucket_val: Any) -> int:
        """Sort a bucketing value into one of ``self.num_buckets`` buckets."""
        return calculate_bucket(self.seed, bucket_val, self.num_buckets)

    def _choose_variant(self, bucket: int) -> Optional[str]:
        return self.variant_set.choose_variant(bucket)
