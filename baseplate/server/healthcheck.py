"""``baseplate-healthcheck thrift|wsgi ENDPOINT``: check that a baseplate service is healthy.

``ENDPOINT`` is ``host:port`` or the path of a UNIX socket. A Thrift service is asked
``BaseplateService.is_healthy()`` over THeader and must answer true; a WSGI service is sent
``GET /health`` and must answer 2xx with a JSON body. On success the command prints ``OK!``
and exits 0; otherwise it prints why on stderr and exits 1. Every network operation is
bounded by ``--timeout`` (default :data:`DEFAULT_TIMEOUT` seconds).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
from collections.abc import Callable, Sequence

from baseplate.config import EndpointConfiguration
from baseplate.server.cli import endpoint_argument

PROGRAM = "baseplate-healthcheck"
#: Seconds allowed for connecting, and for each read or write.
DEFAULT_TIMEOUT = 5.0


class UnhealthyError(Exception):
    """The service answered, and it is not healthy (or it could not be reached)."""


def _describe(endpoint: EndpointConfiguration) -> str:
    address = endpoint.address
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)


def _connect(endpoint: EndpointConfiguration, timeout: float) -> socket.socket:
    try:
        if endpoint.family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(endpoint.address))
            except BaseException:
                sock.close()
                raise
            return sock
        address = endpoint.address
        assert isinstance(address, tuple)
        sock = socket.create_connection((address[0].strip("[]"), address[1]), timeout=timeout)
        sock.settimeout(timeout)
        return sock
    except TimeoutError:
        raise UnhealthyError(f"cannot connect to {_describe(endpoint)}: timed out after {timeout}s")
    except OSError as exc:
        raise UnhealthyError(f"cannot connect to {_describe(endpoint)}: {exc.strerror or exc}")


def check_thrift_service(endpoint: EndpointConfiguration, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Ask the Thrift service at ``endpoint`` whether it is healthy.

    :raises UnhealthyError: saying what went wrong.
    """
    from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
    from thrift.Thrift import TException
    from thrift.transport.TSocket import TSocket

    from baseplate.thrift import BaseplateService

    sock = _connect(endpoint, timeout)
    transport = TSocket()
    transport.setHandle(sock)
    try:
        client = BaseplateService.Client(THeaderProtocolFactory().getProtocol(transport))
        healthy = client.is_healthy()
    except TException as exc:
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        inner = getattr(exc, "inner", None)
        if isinstance(inner, TimeoutError):
            reason = f"no answer within {timeout}s"
        raise UnhealthyError(f"is_healthy() call to {_describe(endpoint)} failed: {reason}")
    except OSError as exc:
        raise UnhealthyError(
            f"is_healthy() call to {_describe(endpoint)} failed: {exc.strerror or exc}"
        )
    finally:
        transport.close()
    if not healthy:
        raise UnhealthyError(f"service at {_describe(endpoint)} says it is not healthy")


class _EndpointHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a TCP or UNIX socket endpoint."""

    def __init__(self, endpoint: EndpointConfiguration, timeout: float) -> None:
        self.health_timeout = timeout
        address = endpoint.address
        if isinstance(address, tuple):
            super().__init__(address[0].strip("[]"), address[1], timeout=timeout)
        else:
            super().__init__("localhost", timeout=timeout)
        self.endpoint = endpoint

    def connect(self) -> None:
        self.sock = _connect(self.endpoint, self.health_timeout)


def check_http_service(endpoint: EndpointConfiguration, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Send ``GET /health`` to the WSGI service at ``endpoint``; expect 2xx and JSON.

    :raises UnhealthyError: saying what went wrong.
    """
    connection = _EndpointHTTPConnection(endpoint, timeout)
    where = _describe(endpoint)
    try:
        connection.request("GET", "/health", headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
    except UnhealthyError:
        raise
    except TimeoutError:
        raise UnhealthyError(f"GET /health on {where}: no answer within {timeout}s")
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UnhealthyError(f"GET /health on {where} failed: {reason}")
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise UnhealthyError(f"GET /health on {where} returned {response.status} {response.reason}")
    try:
        json.loads(body)
    except ValueError:
        raise UnhealthyError(f"GET /health on {where} returned a body that is not JSON")


#: The checks, by protocol name.
CHECKERS: dict[str, Callable[[EndpointConfiguration, float], None]] = {
    "thrift": check_thrift_service,
    "wsgi": check_http_service,
}


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the timeout must be positive, not {text!r}")
    return value


def parse_args(args: Sequence[str]) -> argparse.Namespace:
    """Parse ``baseplate-healthcheck``'s command line."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Check the health of a baseplate service: prints OK! and exits 0 when it is "
            "healthy, else prints the reason and exits 1."
        ),
    )
    parser.add_argument(
        "type",
        choices=sorted(CHECKERS),
        help="the service's protocol: thrift (BaseplateService.is_healthy) or wsgi (GET /health)",
    )
    parser.add_argument(
        "endpoint",
        type=endpoint_argument,
        metavar="ENDPOINT",
        help="host:port, or the path of a UNIX socket",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on a connection or answer after this long (default: {DEFAULT_TIMEOUT:g})",
    )
    return parser.parse_args(args)


def run_healthchecks(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``baseplate-healthcheck``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        CHECKERS[args.type](args.endpoint, args.timeout)
    except UnhealthyError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1)
    print("OK!", flush=True)


__all__ = [
    "CHECKERS",
    "UnhealthyError",
    "check_http_service",
    "check_thrift_service",
    "run_healthchecks",
]
