"""The memcache serializers: exact bytes and flags (shared with pylibmc/r2 and baseplate's
earlier releases), round trips, and values written through a real memcached."""

from __future__ import annotations

import json
import pickle
import uuid
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymemcache.client.base import PooledClient

from baseplate.context.memcache.lib import (
    FLAG_BOOL,
    FLAG_INTEGER,
    FLAG_JSON,
    FLAG_LONG,
    FLAG_PICKLE,
    FLAG_STRING,
    FLAG_ZLIB,
    Flags,
    PickleFlags,
    decompress_and_load,
    decompress_and_unpickle,
    make_dump_and_compress_fn,
    make_pickle_and_compress_fn,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def test_flag_values_match_existing_caches() -> None:
    assert (FLAG_STRING, FLAG_JSON, FLAG_PICKLE) == (0, 1, 1)
    assert (FLAG_INTEGER, FLAG_LONG, FLAG_ZLIB, FLAG_BOOL) == (2, 4, 8, 16)
    assert (Flags.JSON, Flags.INTEGER, Flags.LONG, Flags.ZLIB) == (1, 2, 4, 8)
    assert (PickleFlags.PICKLE, PickleFlags.INTEGER, PickleFlags.LONG, PickleFlags.ZLIB) == (
        1,
        2,
        4,
        8,
    )


def test_dump_exact_bytes_and_flags() -> None:
    dump = make_dump_and_compress_fn()
    assert dump("k", "text") == (b"text", 0)
    assert dump("k", b"\x00raw") == (b"\x00raw", 0)
    assert dump("k", 42) == (b"42", 2)
    assert dump("k", -7) == (b"-7", 2)
    assert dump("k", {"a": 1}) == (b'{"a": 1}', 1)
    assert dump("k", [1, "x"]) == (b'[1, "x"]', 1)
    # booleans are integers, as baseplate stored them
    assert dump("k", True) == (b"1", 2)
    assert dump("k", False) == (b"0", 2)
    assert dump("k", "h\u00e9") == ("h\u00e9".encode(), 0)


def test_dump_compresses_only_past_the_threshold() -> None:
    dump = make_dump_and_compress_fn(min_compress_length=10, compress_level=6)
    assert dump("k", "short") == (b"short", 0)
    long_text = "x" * 11
    assert dump("k", long_text) == (zlib.compress(b"x" * 11, 6), FLAG_ZLIB)
    data, flags = dump("k", {"key": "v" * 50})
    assert flags == FLAG_JSON | FLAG_ZLIB
    assert json.loads(zlib.decompress(data)) == {"key": "v" * 50}
    # 0 disables compression either way
    assert make_dump_and_compress_fn(0, 9)("k", "y" * 500)[1] == 0
    assert make_dump_and_compress_fn(1, 0)("k", "y" * 500)[1] == 0


def test_dump_rejects_non_json_values() -> None:
    with pytest.raises(TypeError):
        make_dump_and_compress_fn()("k", object())


@pytest.mark.parametrize("args", [(-1, 1), (0, 10), (0, -1), ("5", 1)])
def test_bad_compression_settings_are_named(args: tuple[Any, Any]) -> None:
    with pytest.raises(ValueError, match="min_compress_length|compress_level"):
        make_dump_and_compress_fn(*args)
    with pytest.raises(ValueError, match="min_compress_length|compress_level"):
        make_pickle_and_compress_fn(*args)
    # also what baseplate's assert-based checks raised
    with pytest.raises(AssertionError):
        make_dump_and_compress_fn(*args)


def test_load_reads_values_written_by_older_writers() -> None:
    assert decompress_and_load("k", b"raw", 0) == b"raw"
    assert decompress_and_load("k", b"12", FLAG_INTEGER) == 12
    assert decompress_and_load("k", b"99999999999999999999", FLAG_LONG) == 99999999999999999999
    assert decompress_and_load("k", b'{"a": [1]}', FLAG_JSON) == {"a": [1]}
    assert decompress_and_load("k", zlib.compress(b"[1, 2]"), FLAG_JSON | FLAG_ZLIB) == [1, 2]
    assert decompress_and_load("k", zlib.compress(b"7"), FLAG_INTEGER | FLAG_ZLIB) == 7
    assert decompress_and_load("k", b"{broken", FLAG_JSON) is None
    assert decompress_and_load("k", b"odd", 64) == b"odd"


def test_pickle_exact_bytes_and_flags() -> None:
    dump = make_pickle_and_compress_fn()
    assert dump("k", "text") == (b"text", 0)
    assert dump("k", 42) == (b"42", 2)
    assert dump("k", {"a": 1}) == (pickle.dumps({"a": 1}, protocol=2), 1)
    assert dump("k", False) == (b"0", 2)
    data, flags = dump("k", (None, 1.5))
    assert (pickle.loads(data), flags) == ((None, 1.5), FLAG_PICKLE)
    assert data[:2] == b"\x80\x02"  # protocol 2: readable by Python 2 (r2)


def test_unpickle_reads_pylibmc_values() -> None:
    assert decompress_and_unpickle("k", b"raw", 0) == b"raw"
    assert decompress_and_unpickle("k", b"5", FLAG_INTEGER) == 5
    assert decompress_and_unpickle("k", b"5", FLAG_LONG) == 5
    assert decompress_and_unpickle("k", b"1", FLAG_BOOL) is True
    assert decompress_and_unpickle("k", b"0", FLAG_BOOL) is False
    pickled = pickle.dumps({"x": (1, 2)}, protocol=2)
    assert decompress_and_unpickle("k", pickled, FLAG_PICKLE) == {"x": (1, 2)}
    compressed = zlib.compress(pickled)
    assert decompress_and_unpickle("k", compressed, FLAG_PICKLE | FLAG_ZLIB) == {"x": (1, 2)}
    assert decompress_and_unpickle("k", b"not a pickle", FLAG_PICKLE) is None


@settings(max_examples=200, deadline=None)
@given(value=json_values, threshold=st.integers(0, 40), level=st.integers(0, 9))
def test_json_round_trip(value: Any, threshold: int, level: int) -> None:
    data, flags = make_dump_and_compress_fn(threshold, level)("k", value)
    assert isinstance(data, bytes) and 0 <= flags < 2**16
    loaded = decompress_and_load("k", data, flags)
    if isinstance(value, str):
        assert loaded == value.encode("utf-8")
    else:
        assert loaded == value


@settings(max_examples=200, deadline=None)
@given(
    value=json_values | st.integers() | st.tuples(st.integers(), st.text()),
    threshold=st.integers(0, 40),
    level=st.integers(0, 9),
)
def test_pickle_round_trip(value: Any, threshold: int, level: int) -> None:
    data, flags = make_pickle_and_compress_fn(threshold, level)("k", value)
    loaded = decompress_and_unpickle("k", data, flags)
    if isinstance(value, str):
        assert loaded == value.encode("utf-8")
    else:
        assert loaded == value
        # booleans are stored as integers
        assert type(loaded) is (int if isinstance(value, bool) else type(value))


def test_values_survive_a_real_memcached() -> None:
    key = f"bp-lib-{uuid.uuid4().hex}"
    writer = PooledClient(
        ("127.0.0.1", 11211), serializer=make_pickle_and_compress_fn(min_compress_length=16)
    )
    reader = PooledClient(("127.0.0.1", 11211), deserializer=decompress_and_unpickle)
    raw = PooledClient(("127.0.0.1", 11211))
    try:
        value = {"links": list(range(50))}
        writer.set(key, value, noreply=False)
        assert reader.get(key) == value
        # memcached hands back the flags it was given: check them on the wire
        response = raw.raw_command(f"get {key}".encode(), b"END\r\n")
        header = response.split(b"\r\n", 1)[0].split()
        assert header[:3] == [b"VALUE", key.encode(), str(FLAG_PICKLE | FLAG_ZLIB).encode()]
    finally:
        raw.delete(key, noreply=False)
        for client in (writer, reader, raw):
            client.close()
