"""Experiments: choose a variant per request from a watched experiment config file.

The experiment config fetcher daemon keeps a JSON file on disk (``experiments.path``)
mapping experiment names to their configs. :py:class:`ExperimentsContextFactory` watches
it (reloading on change) and attaches an :py:class:`Experiments` object to each request's
context. Choosing a variant logs a bucketing event to the configured
:py:class:`~baseplate.events.EventLogger`, at most once per request for each
experiment and bucketing value (its ``get_unique_id``), whatever variant later calls
return for it.

A malformed experiment is logged and treated as absent (``variant`` returns ``None``)
without affecting the others; a missing or unparsable file makes every experiment
absent until a good version appears (after which later bad versions are ignored and the
last good one kept).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from enum import Enum
from typing import Any, Optional

from baseplate import config
from baseplate.context import ContextFactory
from baseplate.events import DebugLogger, EventLogger
from baseplate.experiments.providers import parse_experiment
from baseplate.experiments.providers.base import Experiment
from baseplate.file_watcher import FileWatcher, WatchedFileNotAvailableError

logger = logging.getLogger(__name__)

#: Where the experiment config fetcher daemon writes the experiments by default.
DEFAULT_EXPERIMENTS_PATH = "/var/local/experiments.json"


class EventType(Enum):
    """The kind of experiment event passed to the event logger as ``event_type``."""

    EXPOSE = "expose"
    BUCKET = "choose"


class ExperimentsContextFactory(ContextFactory):
    """Experiment client context factory.

    This factory will attach a new :py:class:`baseplate.experiments.Experiments` to an
    attribute on the :term:`context object`.

    :param path: Path to the experiment config file.
    :param event_logger: The logger to use to log experiment eligibility events. If not
        provided, a :py:class:`~baseplate.events.DebugLogger` is used.
    :param timeout: How long, in seconds, to block instantiation waiting for the watched
        experiments file to become available (defaults to not blocking).
    """

    def __init__(
        self,
        path: str,
        event_logger: Optional[EventLogger] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self._filewatcher = FileWatcher(path, json.load, timeout=timeout)
        self._event_logger = event_logger

    def make_object_for_context(self, name: str, server_span: Any) -> Experiments:
        """Return a new :py:class:`Experiments` for one request."""
        return Experiments(
            config_watcher=self._filewatcher,
            server_span=server_span,
            context_name=name,
            event_logger=self._event_logger,
        )


class Experiments:
    """Access to experiments with automatic refresh when changed.

    This experiments client allows access to the experiments cached on disk by the
    experiment config fetcher daemon. It will automatically reload the cache when
    changed. This client also handles logging bucketing events to the event pipeline
    when it is determined that the request is part of an active variant.

    One object serves one request: experiments are parsed at most once per request and
    bucketing events are deduplicated per request.
    """

    def __init__(
        self,
        config_watcher: Any,
        server_span: Any,
        context_name: str,
        event_logger: Optional[EventLogger] = None,
    ) -> None:
        self._config_watcher = config_watcher
        self._span = server_span
        self._context_name = context_name
        self._event_logger: EventLogger = event_logger or DebugLogger()
        self._already_bucketed: set[str] = set()
        self._experiment_cache: dict[str, Optional[Experiment]] = {}

    def _get_all_configs(self) -> Optional[Mapping[str, Any]]:
        try:
            config_data = self._config_watcher.get_data()
        except WatchedFileNotAvailableError as exc:
            logger.warning("Experiment config unavailable: %s", exc)
            return None
        except (TypeError, ValueError) as exc:
            logger.warning("Could not load experiment config: %s", exc)
            return None
        if not isinstance(config_data, Mapping):
            logger.warning(
                "Experiment config must be a JSON object of experiments, got %s",
                type(config_data).__name__,
            )
            return None
        return config_data

    def _get_experiment(self, name: str) -> Optional[Experiment]:
        if name in self._experiment_cache:
            return self._experiment_cache[name]

        experiment: Optional[Experiment] = None
        all_configs = self._get_all_configs()
        if all_configs is not None:
            experiment_config = all_configs.get(name)
            if experiment_config is None:
                logger.warning("Experiment <%r> not found in experiment config", name)
            else:
                try:
                    experiment = parse_experiment(experiment_config)
                except Exception as exc:
                    logger.error("Invalid configuration for experiment %r, disabled: %s", name, exc)
        self._experiment_cache[name] = experiment
        return experiment

    def get_all_experiment_names(self) -> list[str]:
        """Return a list of all valid experiment names from the configuration file.

        Experiments whose configuration is malformed are left out.
        """
        all_configs = self._get_all_configs()
        if all_configs is None:
            return []
        return [name for name in all_configs if self._get_experiment(name) is not None]

    def is_valid_experiment(self, name: str) -> bool:
        """Return true if the provided experiment name is a valid experiment.

        :param name: Name of the experiment you want to check.
        """
        return self._get_experiment(name) is not None

    def _inputs(self, user: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        inputs = dict(kwargs)
        if user is not None:
            inputs.update(user.event_fields())
            if "user_roles" not in inputs:
                try:
                    inputs["user_roles"] = sorted(user.roles)
                except Exception:  # logged-out users have no roles
                    pass
        return inputs

    def _log(
        self,
        experiment: Experiment,
        variant: Optional[str],
        event_type: EventType,
        inputs: dict[str, Any],
    ) -> None:
        try:
            self._event_logger.log(
                experiment=experiment,
                variant=variant,
                user_id=inputs.get("user_id"),
                logged_in=inputs.get("logged_in"),
                cookie_created_timestamp=inputs.get("cookie_created_timestamp"),
                app_name=inputs.get("app_name"),
                event_type=event_type,
                inputs=inputs,
                span=self._span,
            )
        except Exception:
            # Losing an experiment event must not fail the request choosing the variant.
            logger.exception(
                "Could not log %s event for experiment %r", event_type.value, experiment.name
            )

    def variant(
        self,
        name: str,
        user: Any = None,
        bucketing_event_override: Optional[bool] = None,
        **kwargs: Any,
    ) -> Optional[str]:
        """Return which variant, if any, is active.

        If a variant is active, a bucketing event will be logged to the event pipeline
        unless any one of the following conditions are met:

        1. bucketing_event_override is set to False.
        2. The experiment specified by "name" explicitly disables bucketing events.
        3. We have already logged a bucketing event for the value specified by
           experiment.get_unique_id(\\*\\*kwargs) within the current request (even if
           that event was for another variant, e.g. before an override applied).

        Since checking the status an experiment will fire a bucketing event, it is best to
        only check the variant when you are making the decision that will expose the
        experiment to the user. If you absolutely must check the status of an experiment
        before you are sure that the experiment will be exposed to the user, you can use
        `bucketing_event_override` to disable bucketing events for that check.

        :param name: Name of the experiment you want to run.
        :param user: (Optional) User object (:py:class:`baseplate.core.User`) for the user
            you want to check the experiment variant for. If you set user, the experiment
            parameters for that user ("user_id", "logged_in", and "user_roles") will be
            extracted and added to the inputs to the call to Experiment.variant. The
            user's event_fields will also be extracted and added to the bucketing event if
            one is logged.
        :param bucketing_event_override: (Optional) If set to False, will never send a
            bucketing event. True or None (the default) apply no override.
        :param kwargs: Arguments that will be passed to experiment.variant to determine
            bucketing, targeting, and overrides. These values will also be passed to the
            logger.
        :return: Variant name if a variant is active, None otherwise (including when the
            experiment is missing, malformed or raises).
        """
        experiment = self._get_experiment(name)
        if experiment is None:
            return None

        inputs = self._inputs(user, kwargs)
        try:
            variant = experiment.variant(**inputs)
            bucketing_id = experiment.get_unique_id(**inputs)
        except Exception:
            logger.exception("Could not choose a variant of experiment %r", name)
            return None

        if (
            bucketing_id
            and variant is not None
            and bucketing_event_override is not False
            and bucketing_id not in self._already_bucketed
            and experiment.should_log_bucketing()
        ):
            self._log(experiment, variant, EventType.BUCKET, inputs)
            self._already_bucketed.add(bucketing_id)

        return variant

    def expose(
        self,
        experiment_name: str,
        variant_name: str,
        user: Any = None,
        **kwargs: Any,
    ) -> None:
        """Log an event to indicate that a user has been exposed to an experimental treatment.

        Nothing is logged if the experiment is missing or malformed.

        :param experiment_name: Name of the experiment that was exposed.
        :param variant_name: Name of the variant that was exposed.
        :param user: (Optional) User object for the user you want to check the experiment
            variant for. If unset, it is expected that user_id and logged_in values will
            be set in the kwargs.
        :param kwargs: Additional arguments that will be passed to logger.
        """
        experiment = self._get_experiment(experiment_name)
        if experiment is None:
            return
        inputs = self._inputs(user, kwargs)
        self._log(experiment, variant_name, EventType.EXPOSE, inputs)


def _nest_spec(prefix: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Turn ``"a.b."`` and a spec into ``{"a": {"b": spec}}`` for parse_config."""
    if not prefix.endswith(".") or not all(prefix[:-1].split(".")):
        raise ValueError(f"configuration prefix must end with a dot, got {prefix!r}")
    nested: dict[str, Any] = spec
    for part in reversed(prefix[:-1].split(".")):
        nested = {part: nested}
    return nested


def experiments_client_from_config(
    app_config: Mapping[str, str],
    event_logger: Optional[EventLogger],
    prefix: str = "experiments.",
) -> ExperimentsContextFactory:
    """Configure and return an :py:class:`ExperimentsContextFactory` object.

    This expects one configuration option:

    ``experiments.path``
        The path to the experiment config file generated by the experiment config fetcher
        daemon (default ``/var/local/experiments.json``).

    and takes one more, optional:

    ``experiments.timeout``
        How long to wait for the file to become available at start-up (e.g.
        ``30 seconds``); not waiting by default.

    :param app_config: The application configuration which should have settings for the
        experiments client.
    :param event_logger: The EventLogger to be used to log bucketing events.
    :param prefix: The prefix of the configuration keys (default ``experiments.``).
    :raises baseplate.config.ConfigurationError: An option is malformed.
    """
    spec = {
        "path": config.Optional(config.String, default=DEFAULT_EXPERIMENTS_PATH),
        "timeout": config.Optional(config.Timespan),
    }
    parsed = config.parse_config(app_config, _nest_spec(prefix, spec))
    for part in prefix[:-1].split("."):
        parsed = parsed[part]

    timeout = parsed.timeout.total_seconds() if parsed.timeout else None
    return ExperimentsContextFactory(parsed.path, event_logger, timeout=timeout)


__all__ = [
    "EventType",
    "Experiments",
    "ExperimentsContextFactory",
    "experiments_client_from_config",
]
