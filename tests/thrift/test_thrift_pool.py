"""baseplate.thrift_pool against real Thrift servers on loopback."""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolFactory
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.transport.THeaderTransport import THeaderClientType, THeaderSubprotocolID
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TFramedTransport, TTransportException

from baseplate.config import ConfigurationError, EndpointConfiguration, InternetAddress
from baseplate.thrift.gen.baseplate import BaseplateService
from baseplate.thrift_pool import ThriftConnectionPool, thrift_pool_from_config


class Health(BaseplateService.Iface):
    """A health handler whose behaviour a test can change between calls."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.drop_connection = False
        self.calls = 0

    def is_healthy(self) -> bool:
        self.calls += 1
        if self.drop_connection:
            # The server closes the connection without answering: a failure mid-call.
            raise TTransportException(TTransportException.UNKNOWN, "dropped on purpose")
        if self.delay:
            time.sleep(self.delay)
        return True


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(thrift_server: Any, health: Health) -> Any:
    return thrift_server(BaseplateService.Processor(health))


def call(pool: ThriftConnectionPool) -> bool:
    with pool.connection() as protocol:
        return bool(BaseplateService.Client(protocol).is_healthy())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sockets_to(port: int) -> int:
    """How many of this process's open sockets are connected to 127.0.0.1:``port``."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[9] in inodes:
                count += 1
    return count


def test_call_through_pool_uses_theader_binary(server: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint)
    with pool.connection() as protocol:
        assert isinstance(protocol, THeaderProtocol)
        assert protocol.trans.protocol_id == THeaderSubprotocolID.BINARY
        assert BaseplateService.Client(protocol).is_healthy() is True


def test_connects_lazily_and_reuses_connections(server: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=3)
    assert server.accepted == 0
    for _ in range(5):
        assert call(pool)
    assert server.accepted == 1
    assert pool.checked_out == 0


def test_concurrent_users_get_separate_connections(server: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=3)
    with contextlib.ExitStack() as stack:
        protocols = [stack.enter_context(pool.connection()) for _ in range(3)]
        assert len({id(protocol) for protocol in protocols}) == 3
        for protocol in protocols:
            assert BaseplateService.Client(protocol).is_healthy()
        assert pool.checked_out == 3
    assert pool.checked_out == 0
    assert server.accepted == 3


def test_exhausted_pool_times_out_with_clear_error(server: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=1, timeout=0.05)
    with pool.connection():
        started = time.monotonic()
        with pytest.raises(TTransportException) as info, pool.connection():
            pass
        assert time.monotonic() - started >= 0.05
    assert info.value.type == TTransportException.TIMED_OUT
    assert "waiting for a free connection" in str(info.value)
    assert "all 1 in use" in str(info.value)
    # the failed wait took nothing from the pool
    assert pool.checked_out == 0
    assert call(pool)


def test_exhausted_pool_hands_a_released_connection_to_the_waiter(
    server: Any, wait_for: Any
) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=1, timeout=10)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with pool.connection():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(call(pool)))
    waiter.start()
    wait_for(lambda: pool.pool.qsize() == 0 and waiter.is_alive(), "the waiter to block")
    assert results == []
    release.set()
    holder.join(10)
    waiter.join(10)
    assert results == [True]
    assert server.accepted == 1


def test_connections_older_than_max_age_are_recycled(server: Any, wait_for: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=1, max_age=0.05)
    with pool.connection() as protocol:
        first = protocol
        BaseplateService.Client(protocol).is_healthy()
    time.sleep(0.06)
    with pool.connection() as protocol:
        assert protocol is not first
        BaseplateService.Client(protocol).is_healthy()
    assert server.accepted == 2
    # the old connection was closed, not leaked
    assert first.trans.isOpen() is False
    wait_for(lambda: server.open_connections == 1, "the server to see the old one close")


def test_max_age_accepts_timedelta(server: Any) -> None:
    pool = ThriftConnectionPool(
        server.endpoint, max_age=datetime.timedelta(minutes=1), timeout=datetime.timedelta(0.5)
    )
    assert pool.max_age == 60.0
    assert call(pool)


def test_connection_failing_mid_call_is_closed_not_returned(server: Any, health: Health) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=1)
    assert call(pool)
    health.drop_connection = True
    with pytest.raises(TTransportException), pool.connection() as protocol:
        broken = protocol
        BaseplateService.Client(protocol).is_healthy()
    assert broken.trans._transport.handle is None  # closed by the pool
    assert pool.checked_out == 0
    health.drop_connection = False
    assert call(pool)
    assert server.accepted == 2


def test_timed_out_call_is_discarded_so_its_late_reply_is_never_read(
    server: Any, health: Health
) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=1, timeout=0.05)
    health.delay = 0.2
    with pytest.raises(TTransportException) as info:
        call(pool)
    assert info.value.type == TTransportException.TIMED_OUT
    health.delay = 0
    # a reused connection would read the late reply to the previous call here
    assert call(pool)
    assert server.accepted == 2


def test_exception_outside_thrift_also_discards_the_connection(server: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint, size=1)
    with pytest.raises(KeyError), pool.connection() as protocol:
        BaseplateService.Client(protocol).is_healthy()
        raise KeyError("application bug between calls")
    assert call(pool)
    assert server.accepted == 2


def test_declared_exception_keeps_the_connection(thrift_server: Any, example_service: Any) -> None:
    class Handler(example_service.Iface):
        def example(self, text: str) -> str:
            raise example_service.ExpectedError(message=text)

    server = thrift_server(example_service.Processor(Handler()))
    pool = ThriftConnectionPool(server.endpoint, size=1)
    for _ in range(2):
        with pytest.raises(example_service.ExpectedError), pool.connection() as protocol:
            example_service.Client(protocol).example("nope")
    assert server.accepted == 1


def test_unreachable_server_gives_up_after_max_retries(unused_port: int) -> None:
    port = unused_port
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", port))
    pool = ThriftConnectionPool(endpoint, size=2, max_retries=3)
    fds = open_fds()
    with pytest.raises(TTransportException) as info:
        call(pool)
    assert info.value.type == TTransportException.NOT_OPEN
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "3 attempt" in str(info.value)
    assert pool.checked_out == 0
    assert open_fds() <= fds


def test_connect_is_retried_until_the_server_is_up(
    thrift_server: Any, health: Health, unused_port: int
) -> None:
    port = unused_port
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", port))
    pool = ThriftConnectionPool(endpoint, max_retries=50)
    starter = threading.Timer(0.05, thrift_server, (BaseplateService.Processor(health), port))
    starter.start()
    try:
        assert call(pool)
    finally:
        starter.join()


def test_pool_recovers_from_killed_server_without_leaking(
    child_server: Any, unused_port: int
) -> None:
    port = unused_port
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", port))
    pool = ThriftConnectionPool(endpoint, size=3, max_retries=1)

    def use_all_connections() -> None:
        with contextlib.ExitStack() as stack:
            for _ in range(3):
                protocol = stack.enter_context(pool.connection())
                assert BaseplateService.Client(protocol).is_healthy()

    first = child_server(port)
    use_all_connections()
    assert sockets_to(port) == 3

    first.kill()
    # while the server is down, calls fail cleanly and give their slot back
    for _ in range(5):
        with pytest.raises(TTransportException):
            call(pool)
    assert pool.checked_out == 0
    assert sockets_to(port) <= 3

    child_server(port)
    # connections to the dead server are noticed and replaced before they are handed out
    use_all_connections()
    use_all_connections()
    assert pool.checked_out == 0
    assert sockets_to(port) == 3


def test_unix_socket_endpoint(thrift_server: Any, health: Health, tmp_path: Any) -> None:
    server = thrift_server(BaseplateService.Processor(health), unix_socket=str(tmp_path / "s"))
    pool = ThriftConnectionPool(server.endpoint)
    assert call(pool)


def test_other_protocol_factory(server: Any) -> None:
    pool = ThriftConnectionPool(server.endpoint, protocol_factory=TBinaryProtocolFactory())
    with pool.connection() as protocol:
        assert isinstance(protocol, TBinaryProtocol)
        assert BaseplateService.Client(protocol).is_healthy()


@pytest.mark.parametrize(
    "make_protocol",
    [
        pytest.param(lambda sock: THeaderProtocol(sock, [THeaderClientType.HEADERS]), id="header"),
        pytest.param(
            lambda sock: THeaderProtocol(
                sock, [THeaderClientType.HEADERS], THeaderSubprotocolID.COMPACT
            ),
            id="header-compact",
        ),
        pytest.param(lambda sock: TBinaryProtocol(TFramedTransport(sock)), id="framed-binary"),
        pytest.param(lambda sock: TBinaryProtocol(sock), id="unframed-binary"),
        pytest.param(lambda sock: TCompactProtocol(TFramedTransport(sock)), id="framed-compact"),
    ],
)
def test_server_accepts_every_client_dialect(server: Any, make_protocol: Any) -> None:
    sock = TSocket("127.0.0.1", server.port)
    protocol = make_protocol(sock)
    protocol.trans.open()
    try:
        client = BaseplateService.Client(protocol)
        assert client.is_healthy() is True
        assert client.is_healthy() is True
    finally:
        protocol.trans.close()


def test_invalid_arguments_name_the_argument() -> None:
    endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", 1))
    with pytest.raises(ValueError, match="size"):
        ThriftConnectionPool(endpoint, size=0)
    with pytest.raises(ValueError, match="max_retries"):
        ThriftConnectionPool(endpoint, max_retries=0)
    with pytest.raises(ValueError, match="timeout"):
        ThriftConnectionPool(endpoint, timeout=-1)
    with pytest.raises(TypeError, match="endpoint"):
        ThriftConnectionPool("127.0.0.1:9090")


class TestFromConfig:
    def test_all_keys(self) -> None:
        pool = thrift_pool_from_config(
            {
                "example_service.endpoint": "localhost:2014",
                "example_service.size": "5",
                "example_service.max_age": "1 minute",
                "example_service.timeout": "500 milliseconds",
                "example_service.max_retries": "7",
                "other.size": "99",
            },
            "example_service.",
        )
        assert pool.endpoint == EndpointConfiguration(
            socket.AF_INET, InternetAddress("localhost", 2014)
        )
        assert (pool.size, pool.max_age, pool.timeout, pool.max_retries) == (5, 60.0, 0.5, 7)

    def test_defaults(self) -> None:
        pool = thrift_pool_from_config({"thrift.endpoint": "/run/service.sock"})
        assert pool.endpoint == EndpointConfiguration(socket.AF_UNIX, "/run/service.sock")
        # from a configuration, connections live 1 minute unless configured, as baseplate's
        # helper has it (the class's own default is 120 seconds)
        assert (pool.size, pool.max_age, pool.timeout, pool.max_retries) == (10, 60.0, 1.0, 3)

    def test_keyword_arguments_win(self) -> None:
        pool = thrift_pool_from_config(
            {"svc.endpoint": "localhost:1", "svc.size": "5"}, "svc.", size=2, timeout=3
        )
        assert (pool.size, pool.timeout) == (2, 3.0)

    def test_values_built_in_code(self) -> None:
        # the same values the redis and memcache helpers take as numbers
        pool = thrift_pool_from_config(
            {"thrift.endpoint": "localhost:1", "thrift.size": 10, "thrift.timeout": 0.25}
        )
        assert (pool.size, pool.timeout) == (10, 0.25)

    def test_durations_as_numbers_of_seconds(self) -> None:
        pool = thrift_pool_from_config(
            {"svc.endpoint": "localhost:1", "svc.timeout": "5", "svc.max_age": "90"}, "svc."
        )
        assert (pool.timeout, pool.max_age) == (5.0, 90.0)

    def test_connects_to_configured_endpoint(self, server: Any) -> None:
        pool = thrift_pool_from_config({"svc.endpoint": f"127.0.0.1:{server.port}"}, "svc.")
        assert call(pool)

    @pytest.mark.parametrize(
        ("raw", "key"),
        [
            ({}, "svc.endpoint"),
            ({"svc.endpoint": "no-port"}, "svc.endpoint"),
            ({"svc.endpoint": "localhost:1", "svc.size": "ten"}, "svc.size"),
            ({"svc.endpoint": "localhost:1", "svc.max_age": "soon"}, "svc.max_age"),
            ({"svc.endpoint": "localhost:1", "svc.timeout": "0"}, "svc.timeout"),
            ({"svc.endpoint": "localhost:1", "svc.max_retries": "x"}, "svc.max_retries"),
            ({"svc.endpoint": "localhost:1", "svc.size": "-1"}, "svc.size"),
            ({"svc.endpoint": "localhost:1", "svc.size": "0"}, "svc.size"),
            ({"svc.endpoint": "localhost:1", "svc.size": str(10**30)}, "svc.size"),
            ({"svc.endpoint": "localhost:1", "svc.size": 10_001}, "svc.size"),
            ({"svc.endpoint": "localhost:1", "svc.max_age": "2 days"}, "svc.max_age"),
            ({"svc.endpoint": "localhost:1", "svc.timeout": float("nan")}, "svc.timeout"),
            ({"svc.endpoint": "localhost:1", "svc.max_retries": "101"}, "svc.max_retries"),
        ],
    )
    def test_errors_name_the_key(self, raw: dict[str, str], key: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            thrift_pool_from_config(raw, "svc.")
        assert info.value.key == key
        assert str(info.value).startswith(key)

    def test_prefix_must_end_with_dot(self) -> None:
        with pytest.raises(ValueError, match="prefix"):
            thrift_pool_from_config({"svc.endpoint": "localhost:1"}, "svc")


GEVENT_CLIENT = """
from gevent import monkey

monkey.patch_all()

import socket
import sys

import gevent
from thrift.transport.TTransport import TTransportException

from baseplate.config import EndpointConfiguration, InternetAddress
from baseplate.thrift.gen.baseplate import BaseplateService
from baseplate.thrift_pool import ThriftConnectionPool

endpoint = EndpointConfiguration(socket.AF_INET, InternetAddress("127.0.0.1", int(sys.argv[1])))
pool = ThriftConnectionPool(endpoint, size=2, timeout=5)


def call():
    with pool.connection() as protocol:
        return BaseplateService.Client(protocol).is_healthy()


greenlets = [gevent.spawn(call) for _ in range(20)]
gevent.joinall(greenlets, raise_error=True)
assert [g.value for g in greenlets] == [True] * 20
assert pool.checked_out == 0

pool.timeout = 0.05
with pool.connection(), pool.connection():
    waiter = gevent.spawn(call)
    waiter.join()
    assert isinstance(waiter.exception, TTransportException), waiter.exception
print("ok")
"""


def test_pool_under_gevent(child_server: Any, unused_port: int) -> None:
    child_server(unused_port)
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_CLIENT, str(unused_port)],
        env=dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2])),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
