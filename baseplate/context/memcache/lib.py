"""Memcache serialization (and compression) compatible with existing reddit caches.

Memcached stores bytes plus a 16-bit ``flags`` integer per item that it hands back
unchanged; these serializers use the flags as a bit field saying how the bytes were made,
with the bit values used by baseplate's earlier releases and by pylibmc (r2):

========  =====  =========================================================
bit       value  meaning
========  =====  =========================================================
(none)    0      text/bytes stored as is (:data:`FLAG_STRING`)
bit 0     1      JSON (:data:`FLAG_JSON`) or, for the pickle pair, a pickle
                 (:data:`FLAG_PICKLE`)
bit 1     2      an integer written in decimal (:data:`FLAG_INTEGER`)
bit 2     4      a Python 2 ``long`` written in decimal (:data:`FLAG_LONG`)
bit 3     8      the bytes are zlib-compressed (:data:`FLAG_ZLIB`)
bit 4     16     a pylibmc boolean written as ``1``/``0`` (:data:`FLAG_BOOL`, read only)
========  =====  =========================================================

New services should use :func:`make_dump_and_compress_fn` with :func:`decompress_and_load`.
Services sharing caches with r2 or other pylibmc users should use
:func:`make_pickle_and_compress_fn` with :func:`decompress_and_unpickle`.

Text is stored as UTF-8 and, like any flag-0 value, comes back as ``bytes``. Booleans are
integers to both serializers, as they were to baseplate's: ``True`` is stored as ``1`` with
:data:`FLAG_INTEGER` and reads back as ``1``.

Both serializers return ``bytes``, never ``str`` (see :func:`make_dump_and_compress_fn` for
how that compares with 0.28).
"""

from __future__ import annotations

import json
import logging
import pickle
import zlib
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

FLAG_STRING = 0
FLAG_JSON = 1 << 0
FLAG_PICKLE = 1 << 0
FLAG_INTEGER = 1 << 1
FLAG_LONG = 1 << 2
FLAG_ZLIB = 1 << 3
FLAG_BOOL = 1 << 4

#: A serializer: ``(key, value) -> (bytes, flags)`` as pymemcache expects.
Serializer = Callable[[Any, Any], "tuple[bytes, int]"]


class Flags:
    """Flag bits of :func:`make_dump_and_compress_fn` / :func:`decompress_and_load`."""

    JSON = FLAG_JSON
    INTEGER = FLAG_INTEGER
    LONG = FLAG_LONG
    ZLIB = FLAG_ZLIB


class PickleFlags:
    """Flag bits of :func:`make_pickle_and_compress_fn` / :func:`decompress_and_unpickle`
    (pylibmc's)."""

    PICKLE = FLAG_PICKLE
    INTEGER = FLAG_INTEGER
    LONG = FLAG_LONG
    ZLIB = FLAG_ZLIB
    BOOL = FLAG_BOOL


class CompressionSettingError(ValueError, AssertionError):
    """An invalid ``min_compress_length`` or ``compress_level``.

    A :exc:`ValueError`; also an :exc:`AssertionError`, which is what baseplate's earlier
    releases raised for these (their checks were ``assert`` statements).
    """


def _check_compression(min_compress_length: int, compress_level: int) -> None:
    if not isinstance(min_compress_length, int) or min_compress_length < 0:
        raise CompressionSettingError(
            f"min_compress_length must be a non-negative integer, got {min_compress_length!r}"
        )
    if not isinstance(compress_level, int) or not 0 <= compress_level <= 9:
        raise CompressionSettingError(
            f"compress_level must be an integer 0-9, got {compress_level!r}"
        )


def _as_bytes(serialized: str | bytes) -> bytes:
    return serialized.encode("utf-8") if isinstance(serialized, str) else serialized


def _maybe_compress(
    serialized: bytes, flags: int, min_compress_length: int, compress_level: int
) -> tuple[bytes, int]:
    if compress_level and min_compress_length and len(serialized) > min_compress_length:
        return zlib.compress(serialized, compress_level), flags | FLAG_ZLIB
    return serialized, flags


def _decompress(serialized: bytes, flags: int) -> tuple[bytes, int]:
    if flags & FLAG_ZLIB:
        return zlib.decompress(serialized), flags & ~FLAG_ZLIB
    return serialized, flags


def decompress_and_load(key: Any, serialized: bytes, flags: int) -> Any:
    """Deserialize data.

    This should be paired with :func:`make_dump_and_compress_fn`.

    :param key: the memcached key.
    :param serialized: the serialized object returned from memcached.
    :param flags: value stored and returned from memcached for the client to use to
        indicate how the value was serialized.
    :returns: The deserialized value (``bytes`` for flag-0 values; ``None`` when a
        JSON value is unreadable).
    """
    serialized, flags = _decompress(serialized, flags)
    if flags == FLAG_STRING:
        return serialized
    if flags in (FLAG_INTEGER, FLAG_LONG):
        return int(serialized)
    if flags == FLAG_JSON:
        try:
            return json.loads(serialized)
        except ValueError:
            logger.info("memcache key %r: unreadable JSON value", key, exc_info=True)
            return None
    logger.info("memcache key %r: unrecognized flags %d", key, flags)
    return serialized


def make_dump_and_compress_fn(min_compress_length: int = 0, compress_level: int = 1) -> Serializer:
    """Make a serializer.

    This should be paired with :func:`decompress_and_load`.

    The resulting method is a chain of :func:`json.dumps` and zlib compression. Values that
    are not JSON serializable will result in a :exc:`TypeError`.

    :param min_compress_length: the minimum serialized string length to enable zlib
        compression. 0 disables compression.
    :param compress_level: zlib compression level. 0 disables compression and 9 is the
        maximum value.
    :returns: The serializer.
    :raises CompressionSettingError: (a :exc:`ValueError` and :exc:`AssertionError`) for
        settings out of range.

    .. rubric:: Return type, compared with 0.28

    The serializer returns ``(bytes, flags)`` for every value. Baseplate 0.28 on Python 3
    returned ``str`` for text, integers and JSON, a leftover of its Python 2 code; this
    project keeps ``bytes``, as reddit's own later releases do (0.30.4 onwards), because
    ``bytes`` is what memcached stores and what the client sends. The bytes and flags are
    those 0.28 wrote: pymemcache encodes 0.28's ``str`` to the same bytes. Where 0.28 on
    Python 3 failed, this works: non-ASCII text (pymemcache's default ASCII encoding refused
    0.28's ``str``; here it is UTF-8), compressing text or JSON (:func:`zlib.compress` takes
    only bytes) and ``bytes`` values (stored as is with flag 0, where 0.28 raised
    :exc:`TypeError` from :func:`json.dumps`). A test that compared a result with ``"val"``
    compares it with ``b"val"``.
    """
    _check_compression(min_compress_length, compress_level)

    def dump_and_compress(key: Any, value: Any) -> tuple[bytes, int]:
        """Serialize ``value`` for memcached; returns ``(bytes, flags)``."""
        if isinstance(value, (str, bytes)):
            serialized, flags = _as_bytes(value), FLAG_STRING
        elif isinstance(value, int):  # bool included: True is stored as 1
            serialized, flags = b"%d" % value, FLAG_INTEGER
        else:
            serialized, flags = json.dumps(value).encode("utf-8"), FLAG_JSON
        return _maybe_compress(serialized, flags, min_compress_length, compress_level)

    return dump_and_compress


def decompress_and_unpickle(key: Any, serialized: bytes, flags: int) -> Any:
    """Deserialize data stored by pylibmc.

    .. warning:: This should only be used when sharing caches with applications using
        pylibmc (like r2). New applications should use the safer and future proofed
        :func:`decompress_and_load`.

    :param key: the memcached key.
    :param serialized: the serialized object returned from memcached.
    :param flags: value stored and returned from memcached for the client to use to
        indicate how the value was serialized.
    :returns: the deserialized value (``None`` when a pickle is unreadable).
    """
    serialized, flags = _decompress(serialized, flags)
    if flags == FLAG_STRING:
        return serialized
    if flags in (FLAG_INTEGER, FLAG_LONG):
        return int(serialized)
    if flags == FLAG_BOOL:
        return bool(int(serialized))
    if flags == FLAG_PICKLE:
        try:
            return pickle.loads(serialized)
        except Exception:
            logger.info("memcache key %r: unreadable pickle", key, exc_info=True)
            return None
    logger.info("memcache key %r: unrecognized flags %d", key, flags)
    return serialized


def make_pickle_and_compress_fn(
    min_compress_length: int = 0, compress_level: int = 1
) -> Serializer:
    """Make a serializer compatible with pylibmc readers.

    The resulting method is a chain of :func:`pickle.dumps` (protocol 2, which Python 2
    readers understand) and zlib compression. This should be paired with
    :func:`decompress_and_unpickle`.

    .. warning:: This should only be used when sharing caches with applications using
        pylibmc (like r2). New applications should use the safer and future proofed
        :func:`make_dump_and_compress_fn`.

    :param min_compress_length: the minimum serialized string length to enable zlib
        compression. 0 disables compression.
    :param compress_level: zlib compression level. 0 disables compression and 9 is the
        maximum value.
    :returns: the serializer.
    :raises CompressionSettingError: (a :exc:`ValueError` and :exc:`AssertionError`) for
        settings out of range.

    Like :func:`make_dump_and_compress_fn`, the serializer returns ``bytes`` where 0.28 on
    Python 3 returned ``str`` (text and integers), with the same bytes and flags on the
    wire. A ``bytes`` value is stored as is with flag 0, as pylibmc stores it (0.28 on
    Python 3 pickled it instead); either way it reads back as the same ``bytes``.
    """
    _check_compression(min_compress_length, compress_level)

    def pickle_and_compress(key: Any, value: Any) -> tuple[bytes, int]:
        """Serialize ``value`` for memcached; returns ``(bytes, flags)``."""
        if isinstance(value, (str, bytes)):
            serialized, flags = _as_bytes(value), FLAG_STRING
        elif isinstance(value, int):  # bool included: True is stored as 1
            serialized, flags = b"%d" % value, FLAG_INTEGER
        else:
            serialized, flags = pickle.dumps(value, protocol=2), FLAG_PICKLE
        return _maybe_compress(serialized, flags, min_compress_length, compress_level)

    return pickle_and_compress


__all__ = [
    "CompressionSettingError",
    "FLAG_BOOL",
    "FLAG_INTEGER",
    "FLAG_JSON",
    "FLAG_LONG",
    "FLAG_PICKLE",
    "FLAG_STRING",
    "FLAG_ZLIB",
    "Flags",
    "PickleFlags",
    "decompress_and_load",
    "decompress_and_unpickle",
    "make_dump_and_compress_fn",
    "make_pickle_and_compress_fn",
]
