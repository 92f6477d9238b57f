"""The memcache serializers return ``bytes`` where baseplate 0.28 on Python 3 returned ``str``,
with the same bytes and flags on the wire (the decision documented in
``make_dump_and_compress_fn`` and docs/migration.rst).

``RESULTS_0_28_PY3`` is what reddit's baseplate v0.28.5 serializers returned when run on
Python 3, recorded as data: ``str`` for text, integers and JSON, ``bytes`` for pickles, and
an error where 0.28 failed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheIllegalInputError

from baseplate.context.memcache.lib import (
    decompress_and_load,
    decompress_and_unpickle,
    make_dump_and_compress_fn,
    make_pickle_and_compress_fn,
)

DUMP, PICKLE = "make_dump_and_compress_fn", "make_pickle_and_compress_fn"
MAKERS = {DUMP: make_dump_and_compress_fn, PICKLE: make_pickle_and_compress_fn}

#: (maker, kwargs, value) -> what 0.28 returned on Python 3, or the exception it raised.
RESULTS_0_28_PY3: list[tuple[str, dict[str, int], Any, Any]] = [
    (DUMP, {}, "val", ("val", 0)),
    (DUMP, {}, "h\u00e9", ("h\u00e9", 0)),
    (DUMP, {}, 42, ("42", 2)),
    (DUMP, {}, True, ("1", 2)),
    (DUMP, {}, {"a": 1}, ('{"a": 1}', 1)),
    (DUMP, {}, [1, 2], ("[1, 2]", 1)),
    (DUMP, {}, b"raw", TypeError),  # json.dumps(bytes)
    (DUMP, {"min_compress_length": 3}, {"a": 1}, TypeError),  # zlib.compress(str)
    (PICKLE, {}, "val", ("val", 0)),
    (PICKLE, {}, 42, ("42", 2)),
    (PICKLE, {}, [1, 2], (b"\x80\x02]q\x00(K\x01K\x02e.", 1)),
]


@pytest.mark.parametrize(("maker", "kwargs", "value", "then"), RESULTS_0_28_PY3)
def test_bytes_where_0_28_returned_str_with_the_same_content_and_flags(
    maker: str, kwargs: dict[str, int], value: Any, then: Any
) -> None:
    serialized, flags = MAKERS[maker](**kwargs)("key", value)
    assert type(serialized) is bytes
    if isinstance(then, tuple):
        old_serialized, old_flags = then
        expected = old_serialized.encode() if isinstance(old_serialized, str) else old_serialized
        assert (serialized, flags) == (expected, old_flags)


def test_values_0_28_could_not_store_on_python_3_are_stored() -> None:
    dump = make_dump_and_compress_fn(min_compress_length=3)
    assert dump("key", b"raw") == (b"raw", 0)
    data, flags = dump("key", {"a": 1})
    assert decompress_and_load("key", data, flags) == {"a": 1}
    assert make_pickle_and_compress_fn()("key", b"raw") == (b"raw", 0)
    # and bytes that 0.28 pickled on Python 3 still read back as the same bytes
    pickled_by_0_28 = (
        b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00rawq\x01X\x06\x00\x00\x00latin1q\x02"
        b"\x86q\x03Rq\x04."
    )
    assert decompress_and_unpickle("key", pickled_by_0_28, 1) == b"raw"


def test_memcached_receives_the_same_bytes_either_way() -> None:
    # What reaches the server from 0.28's str (pymemcache encodes it) and from our bytes.
    key = f"bp-types-{uuid.uuid4().hex}"
    raw = Client(("127.0.0.1", 11211))
    try:
        for maker, kwargs, value, then in RESULTS_0_28_PY3:
            if not isinstance(then, tuple):
                continue
            try:
                raw.set(key, then[0])
            except MemcacheIllegalInputError:
                # pymemcache's default ASCII encoding refused 0.28's non-ASCII str
                assert maker == DUMP and value == "h\u00e9"
                continue
            from_0_28 = raw.get(key)
            ours, _ = MAKERS[maker](**kwargs)("key", value)
            raw.set(key, ours)
            assert raw.get(key) == from_0_28
    finally:
        raw.delete(key)
        raw.close()
