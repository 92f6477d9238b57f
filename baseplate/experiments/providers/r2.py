"""Legacy r2-style experiments: percentage-sized variants interleaved over the buckets."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional, TypeVar

from baseplate.experiments.providers.base import (
    DEFAULT_NUM_BUCKETS,
    Experiment,
    calculate_bucket,
)

logger = logging.getLogger(__name__)

_CASE_SENSITIVE_KEY = "__case_sensitive__"

_R2T = TypeVar("_R2T", bound="R2Experiment")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fold(value: Any, case_sensitive: bool) -> Any:
    """Lower-case string values unless their parameter is declared case sensitive."""
    if case_sensitive or not isinstance(value, str):
        return value
    return value.lower()


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values]


class R2Experiment(Experiment):
    """A "legacy", r2-style experiment.

    .. deprecated:: 0.27
       Use SimpleExperiment with SingleVariantSet or MultiVariantSet instead.

    Should log bucketing events to the event pipeline.

    Note that this style of experiment caps the size of your variants such that::

        def max_variant_size(variant_size, num_variants):
            return max(variant_size, (1/num_variants) * 100)

    The config dict is expected to have the following values:

    * **variants**: dict mapping variant names to their sizes. Variant sizes are
      expressed as numeric percentages rather than a fraction of 1 (that is, 1.5 means
      1.5%, not 150%).
    * **targeting**: (Optional) dict that maps the names of targeting parameters to lists
      of valid values. When determining the variant of an experiment, the targeting
      parameters you want to use are passed in as keyword arguments to the call to
      experiment.variant. An r2 experiment without targeting matches nobody. String
      values are compared case-insensitively unless the parameter is listed under the
      key ``__case_sensitive__``.
    * **overrides**: (Optional) dict that maps override parameters to dictionaries
      mapping values to the variant name you want to override the variant to. When
      determining the variant of an experiment, the override parameters you want to use
      are passed in as keyword arguments to the call to experiment.variant.
    * **bucket_val**: (Optional) Name of the parameter you want to use for bucketing.
      This value must be passed to the call to experiment.variant as a keyword argument.
      Defaults to "user_id".
    * **seed**: (Optional) Overrides the seed for this experiment. If this is not set,
      ``name`` is used as the seed.
    * **newer_than**: (Optional) The earliest time that a bucketing resource can have
      been created by in UTC epoch seconds. If set, targeting on ``logged_in`` only
      matches when the creation time of the resource, in UTC epoch seconds, is passed to
      experiment.variant as ``user_created`` (or ``created``) and is later than this.

    :raises ValueError: The configuration is malformed; the message names the key.
    """

    def __init__(
        self,
        id: int,
        name: str,
        owner: Optional[str],
        variants: Mapping[str, float],
        seed: Optional[str] = None,
        bucket_val: str = "user_id",
        targeting: Optional[Mapping[str, Any]] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        newer_than: Optional[float] = None,
        version: Optional[str] = None,
    ) -> None:
        self.id = id
        self.name = name
        self.owner = owner
        self.version = version
        self.seed = seed if seed else name
        self.num_buckets = DEFAULT_NUM_BUCKETS
        self.variants = self._validate_variants(variants)
        self.bucket_val = bucket_val
        self.newer_than = newer_than

        targeting = dict(targeting or {})
        overrides = dict(overrides or {})
        self._case_sensitive_targeting = self._case_sensitive_params(targeting, "targeting")
        self._case_sensitive_overrides = self._case_sensitive_params(overrides, "overrides")

        self.targeting: dict[str, list[Any]] = {}
        for param, allowed in targeting.items():
            if not isinstance(param, str) or not isinstance(allowed, list):
                raise ValueError(f"experiment {name!r}: targeting.{param} must be a list of values")
            # Parameter names are always case insensitive, even when their values are not.
            key = param.lower()
            sensitive = key in self._case_sensitive_targeting
            self.targeting[key] = [_fold(value, sensitive) for value in allowed]

        self.overrides: dict[str, dict[Any, str]] = {}
        for param, mapping in overrides.items():
            if not isinstance(param, str) or not isinstance(mapping, dict):
                raise ValueError(
                    f"experiment {name!r}: overrides.{param} must map values to variant names"
                )
            key = param.lower()
            sensitive = key in self._case_sensitive_overrides
            self.overrides[key] = {
                _fold(value, sensitive): variant for value, variant in mapping.items()
            }

    def _validate_variants(self, variants: Any) -> dict[str, float]:
        if not isinstance(variants, dict) or not variants:
            raise ValueError(
                f"experiment {self.name!r}: variants must be a non-empty object mapping "
                "variant names to percentages"
            )
        for variant_name, size in variants.items():
            if not _is_number(size) or size < 0:
                raise ValueError(
                    f"experiment {self.name!r}: variants.{variant_name} must be a "
                    f"non-negative percentage, got {size!r}"
                )
        return dict(variants)

    def _case_sensitive_params(self, section: dict[str, Any], section_name: str) -> list[str]:
        params = section.pop(_CASE_SENSITIVE_KEY, [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise ValueError(
                f"experiment {self.name!r}: {section_name}.{_CASE_SENSITIVE_KEY} must be "
                "a list of parameter names"
            )
        return [param.lower() for param in params]

    @classmethod
    def from_dict(
        cls: type[_R2T],
        id: int,
        name: str,
        owner: Optional[str],
        version: Optional[str],
        config: Mapping[str, Any],
    ) -> _R2T:
        """Parse the "experiment" config dict and return a new experiment.

        :param id: The id of the experiment from the base config.
        :param name: The name of the experiment from the base config.
        :param owner: The owner of the experiment from the base config.
        :param version: The version of the experiment from the base config.
        :param config: The "experiment" config dict from the base config.
        """
        if "variants" not in config:
            raise ValueError(f"experiment {name!r}: experiment.variants is missing")
        return cls(
            id=id,
            name=name,
            owner=owner,
            version=version,
            variants=config["variants"],
            targeting=config.get("targeting"),
            overrides=config.get("overrides"),
            seed=config.get("seed"),
            bucket_val=config.get("bucket_val", "user_id"),
            newer_than=config.get("newer_than"),
        )

    def get_unique_id(self, **kwargs: Any) -> Optional[str]:
        """Return ``"<name>:<bucket_val>:<value>"`` or ``None`` without a bucketing value."""
        if kwargs.get(self.bucket_val):
            return ":".join([str(self.name), self.bucket_val, str(kwargs[self.bucket_val])])
        return None

    def should_log_bucketing(self) -> bool:
        """Always: r2 experiments log bucketing events."""
        return True

    def variant(self, **kwargs: Any) -> Optional[str]:
        """Return the variant for these inputs: an override, else by targeting and bucket."""
        lower_kwargs = {key.lower(): value for key, value in kwargs.items()}

        override = self._check_overrides(lower_kwargs)
        if override is not None and override in self.variants:
            return override

        if lower_kwargs.get(self.bucket_val) is None:
            logger.debug(
                "No %s given to choose a variant of experiment %s.", self.bucket_val, self.name
            )
            return None

        if not self._is_targeted(lower_kwargs):
            return None

        bucket = self._calculate_bucket(lower_kwargs[self.bucket_val])
        return self._choose_variant(bucket)

    def _check_overrides(self, kwargs: Mapping[str, Any]) -> Optional[str]:
        for param, mapping in self.overrides.items():
            if param not in kwargs:
                continue
            sensitive = param in self._case_sensitive_overrides
            for value in _as_list(kwargs[param]):
                try:
                    override = mapping.get(_fold(value, sensitive))
                except TypeError:  # an unhashable input cannot match any configured value
                    continue
                if override is not None:
                    return override
        return None

    def _is_targeted(self, kwargs: Mapping[str, Any]) -> bool:
        for param, allowed in self.targeting.items():
            if param not in kwargs:
                continue
            sensitive = param in self._case_sensitive_targeting
            for value in _as_list(kwargs[param]):
                if _fold(value, sensitive) not in allowed:
                    continue
                if param == "logged_in" and self.newer_than:
                    created = kwargs.get("user_created", kwargs.get("created"))
                    if created and created > self.newer_than:
                        return True
                else:
                    return True
        return False

    def _calculate_bucket(self, bucket_val: Any) -> int:
        """Sort a bucketing value into one of ``self.num_buckets`` buckets."""
        return calculate_bucket(self.seed, bucket_val, self.num_buckets)

    def _choose_variant(self, bucket: int) -> Optional[str]:
        """Deterministically choose a percentage-based variant for a bucket.

        The variants (sorted by name) take turns over the buckets: with variants A and B
        at 2% and a control C at 5%, buckets read ``A B C A B C x x C x x C ...`` where x
        is no variant. Growing a variant only hands it buckets that had no variant, so
        users never move from one variant to another. A variant can therefore hold at most
        1/n of the buckets for n variants.
        """
        names = sorted(self.variants)
        num_variants = len(names)
        candidate = names[bucket % num_variants]

        size = self.variants[candidate]
        if size / 100.0 > 1.0 / num_variants:
            logger.warning(
                "Variant %s of experiment %s exceeds the allowable percentage (%.2f > %.2f).",
                candidate,
                self.name,
                size / 100.0,
                1.0 / num_variants,
            )

        # Sizes are percentages; with more than 100 buckets each percent spans several
        # buckets. The multiplication order matters for float rounding: keep it.
        bucket_limit = size * num_variants * (self.num_buckets / 100)
        if bucket < int(bucket_limit):
            return candidate
        return None
