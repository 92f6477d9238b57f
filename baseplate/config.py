"""Configuration parsing and validation.

:func:`parse_config` turns a dictionary of stringy keys and values (typically the
items of an INI section) into a structured, typed configuration object, checking
every value against a *spec*.

A spec is a dict whose keys are option names and whose values are either value
types (any callable taking the raw string and returning the parsed value or
raising :class:`ValueError`), nested specs (dicts, for dotted keys such as
``nested.once``) or parsers such as :class:`DictOf`:

    >>> cfg = parse_config({"nested.once": "1", "rate": "37.1%"}, {
    ...     "nested": {"once": Integer},
    ...     "rate": Percent,
    ... })
    >>> cfg.nested.once, cfg.rate
    (1, 0.371)

An option that is not in the configuration is parsed from the empty string, so a
required option fails (naming its key) and :func:`Optional` supplies its default. Values
built in code rather than read from a file (``{"thrift.size": 10}``, ``True``, ``0.5``) are
read as their text.

The bounded numeric types (:class:`IntegerRange`, :data:`PositiveInteger`,
:class:`Duration`, :class:`Seconds`, :func:`Fraction`) are what the ``*_from_config``
helpers use: each refuses NaN, infinities, negative values where they mean nothing and
absurd sizes, so a bad value stops start-up with one line naming the key:

    >>> parse_config({"pool.size": "-1"}, {"pool": {"size": IntegerRange(1, 100)}})
    Traceback (most recent call last):
    ...
    baseplate.config.ConfigurationError: pool.size: -1 is out of range: expected 1 to 100
"""

from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import functools
import grp
import logging
import math
import pwd
import re
import socket
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import IO, Any, NamedTuple, TypeVar, Union, overload

T = TypeVar("T")
U = TypeVar("U")

#: A value type: takes the raw configuration string and returns the parsed value.
ValueType = Callable[[str], Any]


class ConfigurationError(Exception):
    """Raised when the configuration violates the spec.

    ``key`` is the full dotted configuration key that was wrong and ``error`` the
    reason; the message reads ``"<key>: <error>"``.
    """

    def __init__(self, key: str, error: object) -> None:
        super().__init__(f"{key}: {error}")
        self.key = key
        self.error = error


def String(text: str) -> str:
    """A raw, non-empty string."""
    if not text:
        raise ValueError("no value specified")
    return text


def Float(text: str) -> float:
    """A floating-point number."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"invalid float: {text!r}")


@overload
def Integer(text: str, base: int = 10) -> int: ...


@overload
def Integer(text: None = None, base: int = 10) -> Callable[[str], int]: ...


def Integer(text: str | None = None, base: int = 10) -> Union[int, Callable[[str], int]]:
    """An integer.

    To prevent mistakes, this will raise an error if the user attempts to configure a
    non-whole number.

    :param base: (Optional) If specified, the base of the integer to parse. Called
        without text (``Integer(base=16)``) it returns a value type for that base.
    """
    if text is None:
        return functools.partial(_parse_integer, base=base)
    return _parse_integer(text, base=base)


def _parse_integer(text: str, base: int = 10) -> int:
    try:
        return int(text, base=base)
    except ValueError:
        if base == 10:
            raise ValueError(f"invalid integer: {_shown(text)}")
        raise ValueError(f"invalid base-{base} integer: {_shown(text)}")


def _shown(text: str) -> str:
    """``repr(text)``, cut short: an error message stays one readable line whatever was
    configured."""
    if len(text) > _SHOWN_LENGTH:
        return repr(text[:_SHOWN_LENGTH]) + "..."
    return repr(text)


_SHOWN_LENGTH = 40


def Boolean(text: str) -> bool:
    """True or False, case insensitive."""
    value = text.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ValueError(f"expected 'true' or 'false', got {text!r}")


class InternetAddress(NamedTuple):
    """A host and port pair, as expected by :mod:`socket` for ``AF_INET``."""

    host: str
    port: int


class EndpointConfiguration(NamedTuple):
    """A description of a remote endpoint.

    This is a 2-tuple of (``family`` and ``address``).

    ``family``
        One of :data:`socket.AF_INET` or :data:`socket.AF_UNIX`.

    ``address``
        An address appropriate for the ``family``: an :class:`InternetAddress`
        ``(host, port)`` for ``AF_INET``, the socket path for ``AF_UNIX``.

    .. seealso:: :func:`baseplate.config.Endpoint`
    """

    family: socket.AddressFamily
    address: Union[InternetAddress, str]


def Endpoint(text: str) -> EndpointConfiguration:
    """A remote endpoint to connect to.

    Returns an :class:`EndpointConfiguration`.

    If the endpoint is a hostname:port pair, the ``family`` will be
    :data:`socket.AF_INET` and ``address`` will be a two-tuple of host and port, as
    expected by :mod:`socket`.

    If the endpoint contains a slash (``/``), it will be interpreted as a path to a
    UNIX domain socket. The ``family`` will be :data:`socket.AF_UNIX` and
    ``address`` will be the path as a string.

    The host may be empty (``":9090"``): to :mod:`socket` that means every local
    interface, which is what a server binding to such an endpoint listens on.
    """
    if not text:
        raise ValueError("no endpoint specified")
    if "/" in text:
        return EndpointConfiguration(socket.AF_UNIX, text)

    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"no port specified in endpoint {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port {port_text!r} in endpoint {text!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range in endpoint {text!r}")
    return EndpointConfiguration(socket.AF_INET, InternetAddress(host, port))


def Base64(text: str) -> bytes:
    """A base64 encoded block of data.

    This is useful for arbitrary binary blobs. Whitespace (e.g. line breaks in a
    multi-line value) is ignored; anything else outside the base64 alphabet is an
    error.
    """
    compact = "".join(text.split())
    if not compact:
        raise ValueError("expected base64 encoded data")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 data: {exc}")


def File(mode: str = "r") -> Callable[[str], IO[Any]]:
    """A path to a file.

    This takes a path to a file and returns an open file object, like returned by
    :func:`open`.

    :param mode: an optional string that specifies the mode in which the file is
        opened.
    """

    def open_file(text: str) -> IO[Any]:
        if not text:
            raise ValueError("no file path specified")
        try:
            return open(text, mode=mode)
        except OSError as exc:
            raise ValueError(f"could not open file {text!r}: {exc.strerror or exc}")

    return open_file


#: Each Timespan unit and its length in milliseconds.
_TIMESPAN_UNITS = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60 * 1000,
    "hour": 60 * 60 * 1000,
    "day": 24 * 60 * 60 * 1000,
}
_TIMESPAN_RE = re.compile(r"^\s*(\d+)\s*([a-z]+?)s?\s*$", re.IGNORECASE)
# More milliseconds than datetime.timedelta holds (about 2.7 million years) is "too long".
_MAX_TIMESPAN_MS = int(datetime.timedelta.max.total_seconds()) * 1000


def _timespan_milliseconds(text: str) -> int:
    """The length of a Timespan (``3 seconds``) in milliseconds.

    :raises ValueError: ``text`` is not a Timespan, or is longer than a timedelta holds.
    """
    match = _TIMESPAN_RE.match(text)
    if not match:
        raise ValueError(f"invalid timespan {_shown(text)}: expected e.g. '30 seconds'")
    digits, unit = match.groups()
    if unit.lower() not in _TIMESPAN_UNITS:
        units = ", ".join(f"{name}s" for name in _TIMESPAN_UNITS)
        raise ValueError(f"invalid timespan {_shown(text)}: unknown unit, expected one of {units}")
    # int() refuses thousands of digits with a confusing message: anything that long is
    # too long anyway
    count = int(digits) if len(digits.lstrip("0")) <= 20 else _MAX_TIMESPAN_MS + 1
    milliseconds = count * _TIMESPAN_UNITS[unit.lower()]
    if milliseconds > _MAX_TIMESPAN_MS:
        raise _TimespanTooLong(f"timespan {_shown(text.strip())} is too long")
    return milliseconds


class _TimespanTooLong(ValueError):
    """A Timespan beyond what :class:`datetime.timedelta` holds."""


def Timespan(text: str) -> datetime.timedelta:
    """A span of time.

    This takes a string of the form "1 second" or "3 days" (a whole number and a
    unit) and returns a :class:`datetime.timedelta` representing that span of time.

    Units supported are: milliseconds, seconds, minutes, hours, days (singular or
    plural).
    """
    return datetime.timedelta(milliseconds=_timespan_milliseconds(text))


def Percent(text: str) -> float:
    """A percentage.

    This takes a string of the form "37.2%" or "44%" and returns a float in the range
    [0.0, 1.0].
    """
    stripped = text.strip()
    if not stripped.endswith("%"):
        raise ValueError(f"invalid percentage {_shown(text)}: expected e.g. '37.2%'")
    try:
        percentage = float(stripped[:-1]) / 100.0
    except ValueError:
        raise ValueError(f"invalid percentage {_shown(text)}")
    if not 0.0 <= percentage <= 1.0:
        raise ValueError(f"percentage {_shown(stripped)} is out of the range 0% to 100%")
    return percentage


#: The largest value :class:`IntegerRange` accepts unless given a ``max``: a signed 32-bit
#: integer, beyond any count or size a service configures and within what C libraries take.
MAX_INTEGER = 2**31 - 1
#: The most connections a pool configured from a file may hold (thrift ``size``, redis
#: ``max_connections``, SQLAlchemy ``pool_size`` ...). Some pools set aside every slot when
#: they are made, so an absurd size would hang start-up; no one process needs more.
MAX_POOL_SIZE = 10_000
#: The longest :class:`Duration` accepted unless given a ``max``.
MAX_DURATION = datetime.timedelta(days=1)


class IntegerRange:
    """A whole number from ``min`` to ``max``, both included.

    ``IntegerRange(1, 100)`` parses ``"10"`` into ``10`` and refuses ``"0"``, ``"-1"``,
    ``"1e30"``, ``"nan"`` and ``"2.5"``, saying which bound was broken. The default range
    is 0 to :data:`MAX_INTEGER`.

    :param min: the smallest value accepted.
    :param max: the largest value accepted.
    :param base: the base the number is written in, as for :func:`Integer`.
    """

    def __init__(self, min: int = 0, max: int = MAX_INTEGER, base: int = 10) -> None:
        if min > max:
            raise SpecError(f"IntegerRange: min ({min}) is more than max ({max})")
        self.min = min
        self.max = max
        self.base = base

    def __call__(self, text: str) -> int:
        value = _parse_integer(text, base=self.base)
        if not self.min <= value <= self.max:
            raise ValueError(
                f"{_shown(text.strip())} is out of range: expected "
                f"{self._show(self.min)} to {self._show(self.max)}"
            )
        return value

    def _show(self, value: int) -> str:
        if self.base == 8:
            return oct(value)
        if self.base == 16:
            return hex(value)
        return str(value)

    def __repr__(self) -> str:
        return f"IntegerRange({self.min}, {self.max})"


#: A whole number from 1 to :data:`MAX_INTEGER` (a count that cannot be zero).
PositiveInteger = IntegerRange(1)
#: A whole number from 0 to :data:`MAX_INTEGER`.
NonNegativeInteger = IntegerRange(0)


def _total_seconds(value: datetime.timedelta | float) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def _show_seconds(seconds: float) -> str:
    """``86400`` as ``1 day``, ``90`` as ``90 seconds``: a bound in the words of a Timespan."""
    milliseconds = seconds * 1000
    for unit, length in reversed(_TIMESPAN_UNITS.items()):
        if milliseconds and milliseconds % length == 0:
            count = int(milliseconds // length)
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds:g} seconds"


class Duration:
    """A span of time, written as a :func:`Timespan` (``500 milliseconds``) or as a number of
    seconds (``0.5``); gives a :class:`datetime.timedelta`.

    NaN, infinities, negative values and values above ``max`` (one day unless told
    otherwise) are refused, and so is zero with ``allow_zero=False`` (a timeout or interval
    of zero means "never wait" or "spin", which is never what was meant).

    :param max: the longest duration accepted, a timedelta or a number of seconds.
    :param allow_zero: whether a duration of zero is accepted.
    """

    def __init__(
        self, max: datetime.timedelta | float = MAX_DURATION, *, allow_zero: bool = True
    ) -> None:
        self.max_seconds = _total_seconds(max)
        if not 0 <= self.max_seconds <= _total_seconds(datetime.timedelta.max):
            raise SpecError(f"Duration: max must be a duration, not {max!r}")
        self.allow_zero = allow_zero

    def __call__(self, text: str) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.seconds(text))

    def seconds(self, text: str) -> float:
        """Parse ``text`` into a number of seconds (what :class:`Seconds` gives)."""
        stripped = text.strip()
        try:
            seconds = _timespan_milliseconds(stripped) / 1000
        except _TimespanTooLong:
            seconds = math.inf
        except ValueError:
            try:
                seconds = float(stripped)
            except ValueError:
                raise ValueError(
                    f"invalid duration {_shown(text)}: expected e.g. '30 seconds', "
                    "'500 milliseconds' or a number of seconds"
                )
        if math.isnan(seconds):
            raise ValueError(f"{_shown(stripped)} is not a number")
        if seconds < 0:
            raise ValueError(f"{_shown(stripped)} is out of range: must not be negative")
        if seconds > self.max_seconds:
            raise ValueError(
                f"{_shown(stripped)} is out of range: expected at most "
                f"{_show_seconds(self.max_seconds)}"
            )
        # a value below a microsecond is zero to timedelta and to every socket timeout
        if not self.allow_zero and datetime.timedelta(seconds=seconds) <= datetime.timedelta(0):
            raise ValueError(f"{_shown(stripped)} is out of range: must be more than zero")
        return seconds

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max={self.max_seconds:g}, allow_zero={self.allow_zero})"


class Seconds(Duration):
    """A :class:`Duration` given as a float number of seconds (``"500 milliseconds"`` and
    ``"0.5"`` both give ``0.5``), for APIs that take seconds."""

    def __call__(self, text: str) -> float:  # type: ignore[override]
        return self.seconds(text)


def Fraction(text: str) -> float:
    """A fraction from 0 to 1, written as a percentage (``37%``) or as a number (``0.37``).

    Returns a float in the range [0.0, 1.0]; anything outside it (``150%``, ``-0.1``,
    ``nan``) is refused as out of range.
    """
    stripped = text.strip()
    if stripped.endswith("%"):
        return Percent(stripped)
    try:
        fraction = float(stripped)
    except ValueError:
        raise ValueError(f"invalid fraction {_shown(text)}: expected e.g. '37%' or 0.37")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{_shown(stripped)} is out of range: expected 0 to 1 (or 0% to 100%)")
    return fraction


def UnixUser(text: str) -> int:
    """A Unix user name.

    The parsed value will be the integer user ID.
    """
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ValueError(f"no such user: {text!r}")


def UnixGroup(text: str) -> int:
    """A Unix group name.

    The parsed value will be the integer group ID.
    """
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"no such group: {text!r}")


def OneOf(**options: T) -> Callable[[str], T]:
    """One of several choices.

    For each option, the name is what should be in the configuration file and the
    value is what it is mapped to. For example, ``OneOf(hearts="H", spades="S")``
    parses ``"hearts"`` into ``"H"``.
    """

    def one_of(text: str) -> T:
        try:
            return options[text]
        except KeyError:
            choices = ", ".join(repr(name) for name in options)
            raise ValueError(f"expected one of {choices}, got {text!r}")

    return one_of


def TupleOf(T: Callable[[str], U]) -> Callable[[str], list[U]]:
    """A comma-delimited list of type T.

    At least one value must be provided. If you want an empty list to be a valid
    choice, wrap with :func:`Optional`.
    """

    def tuple_of(text: str) -> list[U]:
        items = [item.strip() for item in text.split(",")]
        items = [item for item in items if item]
        if not items:
            raise ValueError("no values provided")
        parsed = []
        for index, item in enumerate(items):
            try:
                parsed.append(T(item))
            except ValueError as exc:
                raise ValueError(f"item {index} ({item!r}): {exc}")
        return parsed

    return tuple_of


def Optional(T: Callable[[str], U], default: Any = None) -> Callable[[str], Any]:
    """An option of type T, or ``default`` if not configured."""

    def optional(text: str) -> Any:
        if text:
            return T(text)
        return default

    return optional


def Fallback(T1: Callable[[str], Any], T2: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option of type T1, or if that fails to parse, of type T2.

    This is useful for backwards-compatible configuration changes.
    """

    def fallback(text: str) -> Any:
        try:
            return T1(text)
        except ValueError:
            return T2(text)

    return fallback


class SpecError(AssertionError, TypeError):
    """Raised when a spec itself is malformed (a programming error, not bad configuration).

    It is an :exc:`AssertionError`, as in earlier baseplate releases, and a
    :exc:`TypeError`.
    """


class ConfigNamespace(dict[str, Any]):
    """The parsed configuration: a dict whose items are also attributes.

    ``cfg.nested.once`` and ``cfg["nested"]["once"]`` are the same value.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no configuration option {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name)


class Parser:
    """Base for config parsers: something that reads its value(s) from the raw config."""

    @staticmethod
    def from_spec(spec: Any) -> Parser:
        """Return a parser for the given spec: a parser, a dict spec or a value type."""
        if isinstance(spec, Parser):
            return spec
        if isinstance(spec, Mapping):
            return SpecParser(spec)
        if callable(spec):
            return CallableParser(spec)
        raise SpecError(f"invalid configuration spec: {spec!r}")

    def parse(self, key_path: str, raw_config: Mapping[str, str]) -> Any:
        """Parse and return the value(s) found at ``key_path`` in ``raw_config``."""
        raise NotImplementedError


def as_text(value: Any) -> Any:
    """A raw configuration value as text: values built in code rather than read from a file
    (``True``, ``10``, ``0.5``) become what a file would say (``true``, ``10``, ``0.5``), and
    None the empty string (not configured). Anything else is returned unchanged."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _join_key(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class SpecParser(Parser):
    """A parser for a fixed dict spec; gives a :class:`ConfigNamespace`."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        for key in spec:
            if not isinstance(key, str) or not key or "." in key:
                raise SpecError(f"invalid key in configuration spec: {key!r} (nest dicts instead)")
        self.parsers = {key: Parser.from_spec(value) for key, value in spec.items()}

    def parse(self, key_path: str, raw_config: Mapping[str, str]) -> ConfigNamespace:
        parsed = ConfigNamespace()
        for key, parser in self.parsers.items():
            parsed[key] = parser.parse(_join_key(key_path, key), raw_config)
        return parsed


class CallableParser(Parser):
    """A parser for a single option using a value type (any ``str -> value`` callable)."""

    def __init__(self, value_type: Callable[[str], Any]) -> None:
        self.value_type = value_type

    def parse(self, key_path: str, raw_config: Mapping[str, str]) -> Any:
        present = key_path in raw_config
        raw_value = as_text(raw_config.get(key_path, ""))
        try:
            return self.value_type(raw_value)
        except Exception as exc:
            if not present:
                raise ConfigurationError(key_path, f"required option is missing ({exc})")
            raise ConfigurationError(key_path, exc)


class DictOf(Parser):
    """A group of options of a given type.

    Every key below the option's prefix becomes an item, so the application need not
    know all of the keys ahead of time. ``population.us = 325165000`` parsed with
    ``{"population": DictOf(Integer)}`` gives ``cfg.population["us"] == 325165000``.

    The type can be any spec, including a dict spec:
    ``{"countries": DictOf({"population": Integer, "capital": String})}`` parses
    ``countries.us.population`` and ``countries.us.capital`` into
    ``cfg.countries["us"].capital``.
    """

    def __init__(self, spec: Any) -> None:
        self.subparser = Parser.from_spec(spec)

    def parse(self, key_path: str, raw_config: Mapping[str, str]) -> ConfigNamespace:
        prefix = f"{key_path}." if key_path else ""
        values = ConfigNamespace()
        for key in raw_config:
            if not key.startswith(prefix):
                continue
            subkey = key[len(prefix) :].split(".", 1)[0]
            if not subkey or subkey in values:
                continue
            values[subkey] = self.subparser.parse(prefix + subkey, raw_config)
        return values


def parse_config(config: Mapping[str, str], spec: Mapping[str, Any]) -> ConfigNamespace:
    """Parse options against a spec and return a structured representation.

    :param config: The raw stringy configuration dictionary.
    :param spec: A specification of what the config should look like.
    :raises ConfigurationError: The configuration violated the spec.
    :return: A structured configuration object.
    """
    return SpecParser(spec).parse("", config)


_logger = logging.getLogger(__name__)


def warn_unknown_keys(
    raw_config: Mapping[str, Any],
    prefix: str,
    known: Collection[str],
    logger: logging.Logger | None = None,
    ignore: Iterable[str] = (),
) -> list[str]:
    """Warn about the ``<prefix>*`` keys of ``raw_config`` that are not ``<prefix>`` + one of
    ``known``: a misspelt key (``tracing.sampel_rate``) would otherwise be silently ignored.

    One warning line per unknown key, naming it and the nearest known key (``did you mean
    tracing.sample_rate?``), or the known keys when none is near. ``prefix`` is the section
    prefix the caller owns (``"tracing."``), or ``""`` for a whole section; keys in
    ``ignore`` (a ``[DEFAULT]`` section's, for instance) are not reported. ``logger`` is the
    caller's (default: this module's).

    :return: The unknown keys, sorted.
    """
    log = logger or _logger
    skipped = set(ignore)
    unknown = sorted(
        key
        for key in raw_config
        if isinstance(key, str)
        and key.startswith(prefix)
        and key[len(prefix) :] not in known
        and key not in skipped
    )
    for key in unknown:
        close = difflib.get_close_matches(key[len(prefix) :], list(known), n=1)
        if close:
            hint = f"did you mean {prefix}{close[0]}?"
        else:
            hint = "known keys: " + ", ".join(prefix + name for name in sorted(known))
        log.warning("unknown configuration key %s is ignored; %s", key, hint)
    return unknown


__all__ = [
    "Base64",
    "Boolean",
    "ConfigNamespace",
    "ConfigurationError",
    "DictOf",
    "Duration",
    "Endpoint",
    "EndpointConfiguration",
    "Fallback",
    "File",
    "Float",
    "Fraction",
    "Integer",
    "IntegerRange",
    "InternetAddress",
    "MAX_DURATION",
    "MAX_INTEGER",
    "MAX_POOL_SIZE",
    "NonNegativeInteger",
    "OneOf",
    "Optional",
    "Parser",
    "Percent",
    "PositiveInteger",
    "Seconds",
    "SpecError",
    "String",
    "Timespan",
    "TupleOf",
    "UnixGroup",
    "UnixUser",
    "as_text",
    "parse_config",
    "warn_unknown_keys",
]
