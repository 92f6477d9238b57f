"""Carriers: how propagators read and write headers in the places baseplate keeps them.

OpenTelemetry propagators take text names and values. THeader headers are bytes; they are
carried as Latin-1 text, which maps every byte to one character and back, so binary values
(the raw Edge-Request) survive the text API unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.propagators.textmap import Getter, Setter


class CaseInsensitiveGetter(Getter[Mapping[str, Any]]):
    """Reads headers from a mapping whatever the case of its keys."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for name, candidate in carrier.items():
                if isinstance(name, str) and name.lower() == lowered:
                    value = candidate
                    break
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        if isinstance(value, bytes):
            return [value.decode("latin-1")]
        return [str(item) for item in value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


class WSGIEnvironGetter(Getter[Mapping[str, Any]]):
    """Reads HTTP headers from a WSGI environ (``X-Trace`` is ``HTTP_X_TRACE``)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k[5:].replace("_", "-") for k in carrier if k.startswith("HTTP_")]


class ThriftHeaderGetter(Getter[Mapping[Any, Any]]):
    """Reads THeader headers: a mapping whose keys and values are bytes (or str)."""

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        value = carrier.get(key.encode("ascii"))
        if value is None:
            value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for name, candidate in carrier.items():
                text = name.decode("latin-1") if isinstance(name, bytes) else str(name)
                if text.lower() == lowered:
                    value = candidate
                    break
        if value is None:
            return None
        if isinstance(value, bytes):
            return [value.decode("latin-1")]
        return [str(value)]

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        return [k.decode("latin-1") if isinstance(k, bytes) else str(k) for k in carrier]


class ThriftHeaderSetter(Setter[dict[Any, Any]]):
    """Writes THeader headers as bytes keys and values (values given as Latin-1 text)."""

    def set(self, carrier: dict[Any, Any], key: str, value: str) -> None:
        carrier[key.encode("ascii")] = value.encode("latin-1")


#: Getter for THeader header mappings.
thrift_getter = ThriftHeaderGetter()
#: Setter for THeader header mappings.
thrift_setter = ThriftHeaderSetter()
#: Getter for a WSGI environ.
wsgi_getter = WSGIEnvironGetter()
#: Getter for header mappings whose key case is unknown.
case_insensitive_getter = CaseInsensitiveGetter()

__all__ = [
    "CaseInsensitiveGetter",
    "ThriftHeaderGetter",
    "ThriftHeaderSetter",
    "WSGIEnvironGetter",
    "case_insensitive_getter",
    "thrift_getter",
    "thrift_setter",
    "wsgi_getter",
]
