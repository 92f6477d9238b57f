"""Work in a greenlet gives the event loop back every MAX_LOOP_HOLD, and only under gevent.

gevent is stood in for by modules put in ``sys.modules`` (the helpers never import it), so
the tests decide whether it "patched" threading and count its sleeps; the real thing runs in
the exporters' gevent tests.
"""

from __future__ import annotations

import sys
import time
import types

import pytest

from otel_bridge.concurrency import MAX_LOOP_HOLD, LoopHold, gevent_sleep, yielding_the_loop


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """gevent, as it looks once ``patch_all()`` ran; its sleeps are recorded, not slept."""
    recorded: list[float] = []
    monkey = types.ModuleType("gevent.monkey")
    monkey.is_module_patched = lambda name: name == "threading"  # type: ignore[attr-defined]
    gevent = types.ModuleType("gevent")
    gevent.sleep = recorded.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gevent", gevent)
    monkeypatch.setitem(sys.modules, "gevent.monkey", monkey)
    return recorded


def _busy(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def test_without_gevent_nothing_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "gevent.monkey", raising=False)
    assert gevent_sleep() is None
    items = list(range(5))
    assert list(yielding_the_loop(items)) == items
    hold = LoopHold()
    _busy(MAX_LOOP_HOLD * 2)
    hold.checkpoint()  # nothing to give back to


def test_gevent_imported_but_not_patching_is_not_gevent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkey = types.ModuleType("gevent.monkey")
    monkey.is_module_patched = lambda name: False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gevent.monkey", monkey)
    assert gevent_sleep() is None


def test_under_gevent_the_loop_is_given_back_once_held_too_long(sleeps: list[float]) -> None:
    items = []
    for item in yielding_the_loop(range(4)):
        items.append(item)
        _busy(MAX_LOOP_HOLD * 1.5)  # each item's work holds the loop longer than allowed

    assert items == [0, 1, 2, 3]
    assert len(sleeps) == 3  # before every item but the first
    assert all(0 < seconds < MAX_LOOP_HOLD for seconds in sleeps)


def test_under_gevent_quick_work_is_not_interrupted(sleeps: list[float]) -> None:
    assert list(yielding_the_loop(range(100), max_hold=0.05)) == list(range(100))
    assert sleeps == []  # 100 items of no work fit in one hold


def test_a_checkpoint_restarts_the_clock(sleeps: list[float]) -> None:
    hold = LoopHold(max_hold=0.05)  # long enough that the test's own pauses never count
    assert hold.cooperative_sleep is not None
    hold.checkpoint()
    assert sleeps == []
    _busy(0.075)
    hold.checkpoint()
    hold.checkpoint()  # just given back: not again
    assert len(sleeps) == 1
