"""Experiment providers, and :py:func:`parse_experiment` choosing one from a config."""

from __future__ import annotations

import calendar
import datetime
import logging
import time
import warnings
from collections.abc import Mapping
from typing import Any

from baseplate.experiments.providers.base import Experiment
from baseplate.experiments.providers.feature_flag import FeatureFlag
from baseplate.experiments.providers.forced_variant import ForcedVariantExperiment
from baseplate.experiments.providers.r2 import R2Experiment
from baseplate.experiments.providers.simple_experiment import (
    VARIANT_SET_TYPES,
    SimpleExperiment,
)

logger = logging.getLogger(__name__)

#: The date format of the deprecated ``expires`` key.
ISO_DATE_FMT = "%Y-%m-%d"

_LEGACY_TYPES: dict[str, type[R2Experiment]] = {
    "r2": R2Experiment,
    "feature_flag": FeatureFlag,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _time_window(config: Mapping[str, Any], name: Any) -> tuple[float, float]:
    start_ts = config.get("start_ts")
    stop_ts = config.get("stop_ts")
    if start_ts is not None and stop_ts is not None:
        if not _is_number(start_ts) or not _is_number(stop_ts):
            raise ValueError(f"experiment {name!r}: start_ts and stop_ts must be numbers")
        return float(start_ts), float(stop_ts)

    if "expires" in config:
        warnings.warn(
            f"The 'expires' field of experiment {name!r} is deprecated; use 'start_ts' "
            "and 'stop_ts'.",
            DeprecationWarning,
            stacklevel=3,
        )
        try:
            expires = datetime.datetime.strptime(str(config["expires"]), ISO_DATE_FMT)
        except ValueError:
            raise ValueError(
                f"experiment {name!r}: expires must be a date like 2017-01-31, "
                f"got {config['expires']!r}"
            ) from None
        return time.time(), float(calendar.timegm(expires.timetuple()))

    raise ValueError(f"experiment {name!r}: start_ts and/or stop_ts is missing")


def parse_experiment(config: Mapping[str, Any]) -> Experiment:
    """Parse an experiment config dict and return an appropriate Experiment object.

    The config dict is expected to have the following values:

    * **id**: Integer experiment ID, should be unique for each experiment.
    * **name**: String experiment name, should be unique for each experiment.
    * **owner**: The group or individual that owns this experiment.
    * **version**: String to identify the specific version of the experiment.
    * **start_ts**: A float of seconds since the epoch of date and time when you want the
      experiment to start. If an experiment has not been started yet, it is considered
      disabled.
    * **stop_ts**: A float of seconds since the epoch of date and time when you want the
      experiment to stop. Once an experiment is stopped, it is considered disabled.
    * **type**: String specifying the type of experiment to run: ``r2``,
      ``feature_flag``, ``single_variant``, ``multi_variant`` or ``feature_rollout``. If
      this value is not recognized, the experiment will be considered disabled (and a
      warning logged).
    * **experiment**: The experiment config dict for the specific type of experiment.
      The format of this is determined by the specific experiment type.
    * **enabled**: (Optional) If set to False, the experiment will be disabled and calls
      to experiment.variant will always return None and will not log bucketing events to
      the event pipeline. Defaults to True.
    * **global_override**: (Optional) If this is set, calls to experiment.variant will
      always return the override value and will not log bucketing events to the event
      pipeline.

    :param config: Configuration dict for the experiment you wish to run.
    :return: A subclass of :py:class:`~baseplate.experiments.providers.base.Experiment`
        for the given experiment type.
    :raises ValueError: The configuration is malformed (missing or mistyped ``id``,
        ``start_ts``/``stop_ts``, ``experiment``, or a bad type-specific config); the
        message names the experiment and the key.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"an experiment config must be an object, got {type(config).__name__}")

    name = config.get("name")
    experiment_id = config.get("id")
    if isinstance(experiment_id, bool) or not isinstance(experiment_id, int):
        raise ValueError(f"experiment {name!r}: id must be an integer, got {experiment_id!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"experiment {experiment_id}: name must be a non-empty string")
    owner = config.get("owner")

    experiment_type = config.get("type")
    if isinstance(experiment_type, str):
        experiment_type = experiment_type.lower()

    start_ts, stop_ts = _time_window(config, name)

    if "version" in config:
        version = config["version"]
    else:
        warnings.warn(
            f"The 'version' field is missing from experiment {name!r}; it will be required.",
            DeprecationWarning,
            stacklevel=2,
        )
        version = None

    enabled = config.get("enabled", True)
    now = time.time()
    if now < start_ts or now > stop_ts:
        enabled = False

    described = {"id": experiment_id, "name": name, "owner": owner, "version": version}

    if not enabled and experiment_type in _LEGACY_TYPES:
        return ForcedVariantExperiment(None, **described)

    experiment_config = config.get("experiment")
    if not isinstance(experiment_config, Mapping):
        raise ValueError(f"experiment {name!r}: experiment must be an object")

    if "global_override" in config:
        # global_override = null is a valid override: no variant for anyone.
        return ForcedVariantExperiment(config["global_override"], **described)

    if experiment_type in _LEGACY_TYPES:
        return _LEGACY_TYPES[experiment_type].from_dict(
            id=experiment_id,
            name=name,
            owner=owner,
            version=version,
            config=experiment_config,
        )

    if experiment_type in VARIANT_SET_TYPES:
        return SimpleExperiment.from_dict(
            id=experiment_id,
            name=name,
            owner=owner,
            start_ts=start_ts,
            stop_ts=stop_ts,
            enabled=bool(enabled),
            config=experiment_config,
            variant_type=experiment_type,
        )

    logger.warning(
        "Experiment <%s:%s> owned by <%s> has unknown type <%s>; it is disabled. Please clean up.",
        experiment_id,
        name,
        owner,
        experiment_type,
    )
    return ForcedVariantExperiment(None, **described)


__all__ = [
    "ISO_DATE_FMT",
    "Experiment",
    "FeatureFlag",
    "ForcedVariantExperiment",
    "R2Experiment",
    "SimpleExperiment",
    "parse_experiment",
]
