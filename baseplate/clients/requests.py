"""HTTP clients on the context object: ``requests`` calls that are client spans.

::

    baseplate.add_to_context("accounts", InternalRequestsClient())
    baseplate.add_to_context("weather", ExternalRequestsClient())

    def my_view(request):
        # a client span named "accounts.request", carrying the trace to the callee
        profile = request.accounts.get("http://accounts.internal/profile", timeout=2).json()
        # a client span named "weather.request"; no trace or edge header leaves the process
        forecast = request.weather.get("https://api.weather.example/today", timeout=5)

The context attribute is a :class:`BaseplateSession`, with the request methods of a
:class:`requests.Session`. Each call (each hop of a redirect included) is one client span
``<attribute>.request``, timed in statsd as ``clients.<attribute>.request`` with a
``.success`` or ``.failure`` counter; the span is tagged ``http.method``, ``http.url``
(without credentials or query values), ``http.status_code`` and
``http.response_content_length``, and fails when the call raises or the answer is a 5xx.

Which client to use:

* :class:`InternalRequestsClient` calls services of the same deployment. It sends the trace
  headers of the configured formats (:func:`otel_bridge.propagation.http_propagator`:
  baseplate's ``X-Trace`` ..., W3C ``traceparent``, ``b3``) and ``X-Edge-Request``, the edge
  context of the request being served (padded standard base64, empty when there is none,
  as reddit's baseplate 1.x sends it). Those carry the user's authentication token, so it
  connects only to loopback and private addresses (and to ``allowed_networks``).
* :class:`ExternalRequestsClient` calls third parties. It sends no trace and no edge header,
  and refuses to connect to loopback, private, shared, link-local, multicast, reserved and
  cloud metadata addresses (unless given in ``allowed_networks``), the usual targets of
  server-side request forgery.
* :class:`RequestsClient`, the base of both, sends no trace header and checks no address.

The address check runs when a connection is made, on the addresses the host name resolves
to then, and again on the address the socket is connected to, so a name that resolves to a
public address when the URL is checked and to ``127.0.0.1`` a moment later (DNS rebinding)
is still refused. Clients that check addresses do not go through HTTP proxies (a proxy
connects where this process cannot check) and do not read the proxy, ``.netrc`` or CA bundle
settings of the environment other than ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``.

When ``opentelemetry-instrumentation-requests`` (or ``-urllib3``) is active too, the vendor
span for a call made through these clients is suppressed: one client span per call (see
:mod:`baseplate.context._clients`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union
from urllib.parse import urlsplit, urlunsplit

import requests
from opentelemetry.trace import Status, StatusCode
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from baseplate import config
from baseplate._span import ContextFactory, Span
from baseplate.context._clients import (
    parse_prefixed,
    vendor_instrumentation_active,
    vendor_suppressed,
)
from otel_bridge.context import edge_request
from otel_bridge.propagation import http_propagator
from otel_bridge.propagation.baseplate_headers import http_edge_request_value
from otel_bridge.propagation.headers import EDGE_REQUEST_HTTP_HEADER

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: What a resolver returns for ``(host, port)``: :func:`socket.getaddrinfo` entries.
AddressInfo = tuple[Any, Any, Any, Any, Any]
Resolver = Callable[[str, int], Sequence[AddressInfo]]

_VENDORS = (
    ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"),
)

#: The most retries :func:`http_adapter_from_config` accepts for ``max_retries``.
MAX_RETRIES = 100
#: Span tag holding the length of the response body in bytes.
TAG_RESPONSE_LENGTH = "http.response_content_length"
#: What stands for a query value or a bare query item in the ``http.url`` tag.
REDACTED = "REDACTED"


def _vendor_active() -> bool:
    return any(vendor_instrumentation_active(*vendor) for vendor in _VENDORS)


# -- addresses ------------------------------------------------------------------------------


def _networks(*specs: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(network), reason) for network, reason in specs)


#: Addresses no client connects to unless they are in its ``allowed_networks``: the
#: instance metadata services of the cloud providers (AWS, GCP, Azure, OpenStack, Oracle,
#: Alibaba, ECS task metadata). Some lie in private ranges an internal client may use.
METADATA_NETWORKS = _networks(
    ("169.254.169.254/32", "cloud metadata"),
    ("169.254.170.2/32", "cloud metadata"),
    ("168.63.129.16/32", "cloud metadata"),
    ("100.100.100.200/32", "cloud metadata"),
    ("192.0.0.192/32", "cloud metadata"),
    ("fd00:ec2::254/128", "cloud metadata"),
)

#: Addresses :class:`ExternalRequestsClient` refuses, with the reason it gives.
DENIED_NETWORKS = _networks(
    ("0.0.0.0/8", "this host (unspecified)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "this host (unspecified)"),
    ("::1/128", "loopback"),
    ("::/96", "reserved (IPv4-compatible)"),
    ("64:ff9b:1::/48", "reserved (local-use NAT64)"),
    ("100::/64", "reserved (discard)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("5f00::/16", "reserved (segment routing)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved (site-local)"),
    ("ff00::/8", "multicast"),
)

#: Addresses :class:`InternalRequestsClient` connects to (besides its ``allowed_networks``).
INTERNAL_NETWORKS = tuple(
    network
    for network, _ in _networks(
        ("127.0.0.0/8", ""),
        ("10.0.0.0/8", ""),
        ("172.16.0.0/12", ""),
        ("192.168.0.0/16", ""),
        ("100.64.0.0/10", ""),
        ("::1/128", ""),
        ("fc00::/7", ""),
    )
)

# IPv6 forms that reach an IPv4 address: the check applies to that address.
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address reaches, else ``address``."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _IPV4_MAPPED or address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _parse_network(value: str | Network) -> Network:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    try:
        return ipaddress.ip_network(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"not a network (an address, or one in CIDR notation): {exc}") from None


def _default_resolve(host: str, port: int) -> Sequence[AddressInfo]:
    return socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)


class AddressPolicy:
    """Which addresses a client may connect to, checked at connect time.

    :param allowed_networks: Networks always allowed (exceptions to the refusals, metadata
        addresses included when listed).
    :param internal_only: Allow only :data:`INTERNAL_NETWORKS` (and ``allowed_networks``),
        else refuse :data:`DENIED_NETWORKS` and allow the rest.
    :param resolve: How host names are resolved at connect time: ``(host, port)`` to
        :func:`socket.getaddrinfo` entries (the default).
    """

    def __init__(
        self,
        allowed_networks: Iterable[str | Network] = (),
        *,
        internal_only: bool = False,
        resolve: Resolver | None = None,
    ) -> None:
        self.allowed_networks = tuple(_parse_network(network) for network in allowed_networks)
        self.internal_only = internal_only
        self.resolve: Resolver = resolve or _default_resolve

    @classmethod
    def external(
        cls, allowed_networks: Iterable[str | Network] = (), resolve: Resolver | None = None
    ) -> AddressPolicy:
        """Refuse the internal and special addresses of :data:`DENIED_NETWORKS`."""
        return cls(allowed_networks, resolve=resolve)

    @classmethod
    def internal(
        cls, allowed_networks: Iterable[str | Network] = (), resolve: Resolver | None = None
    ) -> AddressPolicy:
        """Allow only loopback and private addresses (:data:`INTERNAL_NETWORKS`)."""
        return cls(allowed_networks, internal_only=True, resolve=resolve)

    def refusal(self, address: Address | str) -> str | None:
        """Why ``address`` is refused, or None when it is allowed."""
        if isinstance(address, str):
            address = ipaddress.ip_address(address.split("%", 1)[0])
        if any(address in network for network in self.allowed_networks):
            return None
        reached = _embedded_ipv4(address)
        if reached != address and any(reached in network for network in self.allowed_networks):
            return None
        for candidate in {address, reached}:
            for network, reason in METADATA_NETWORKS:
                if candidate in network:
                    return reason
        if self.internal_only:
            if any(reached in network for network in INTERNAL_NETWORKS):
                return None
            return "not a loopback or private address (an internal client's are)"
        for candidate in {address, reached}:
            for network, reason in DENIED_NETWORKS:
                if candidate in network:
                    return reason
        return None

    def __repr__(self) -> str:
        kind = "internal" if self.internal_only else "external"
        allowed = ", ".join(str(network) for network in self.allowed_networks)
        return f"<AddressPolicy {kind} allowed_networks=[{allowed}]>"


class AddressNotAllowed(requests.exceptions.ConnectionError):
    """A client refused to connect: the address is not one its policy allows.

    Raised by the call; a :class:`requests.ConnectionError`, so handlers of connection
    errors see it too. ``address`` and ``reason`` say what was refused and why.
    """

    def __init__(
        self, message: str, *, address: str | None = None, reason: str | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.address = address
        self.reason = reason


class _Refused(Exception):
    """Raised inside urllib3 (not an OSError, so it is neither retried nor wrapped)."""

    def __init__(self, host: str, port: int, address: str, reason: str) -> None:
        super().__init__(f"refused to connect to {host}:{port} at {address}: {reason}")
        self.address = address
        self.reason = reason


class _GuardedConnectionMixin:
    """``_new_conn`` of a urllib3 connection, connecting only where the policy allows."""

    address_policy: AddressPolicy
    # provided by urllib3's HTTPConnection
    _dns_host: str
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        policy = self.address_policy
        host = self._dns_host.strip("[]").rstrip(".")
        try:
            infos = policy.resolve(host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        refused: tuple[str, str] | None = None
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            reason = policy.refusal(address)
            if reason is not None:
                refused = refused or (address, reason)
                continue
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                # the address actually connected to, whatever resolved to what
                peer = str(sock.getpeername()[0])
            except OSError as exc:
                sock.close()
                error = exc
                continue
            reason = policy.refusal(peer)
            if reason is not None:
                sock.close()
                raise _Refused(self.host, self.port, peer, reason)
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if error is not None:
            if isinstance(error, socket.timeout):
                raise ConnectTimeoutError(
                    self,
                    f"Connection to {self.host} timed out. (connect timeout={self.timeout})",
                ) from error
            raise NewConnectionError(
                self,  # type: ignore[arg-type]
                f"Failed to establish a new connection: {error}",
            ) from error
        if refused is not None:
            raise _Refused(self.host, self.port, *refused)
        raise NewConnectionError(
            self,  # type: ignore[arg-type]
            f"Failed to establish a new connection: {self.host} resolved to no address",
        )


def _guarded_pool_classes(policy: AddressPolicy) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes (by scheme) whose connections check addresses with ``policy``."""
    http_connection = type(
        "GuardedHTTPConnection",
        (_GuardedConnectionMixin, HTTPConnection),
        {"address_policy": policy},
    )
    https_connection = type(
        "GuardedHTTPSConnection",
        (_GuardedConnectionMixin, HTTPSConnection),
        {"address_policy": policy},
    )
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {
            "ConnectionCls": http_connection
        }),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {
            "ConnectionCls": https_connection
        }),
    }


# -- the adapter ----------------------------------------------------------------------------

Timeout = Union[float, tuple[float, float], tuple[float, None], None]


class BaseplateHTTPAdapter(HTTPAdapter):
    """A :class:`requests.adapters.HTTPAdapter` (a pool of connections per host) with a
    default timeout and, when given an :class:`AddressPolicy`, a check of every address it
    connects to.

    :param timeout: Seconds to wait for the server (connecting and each read) when a call
        gives no ``timeout``; None waits forever, as ``requests`` does.
    :param connect_timeout: Seconds to wait for a connection, when different.
    :param allowed_networks: Networks the clients using this adapter also allow.
    :param address_policy: The address check (the clients set it; see
        :meth:`with_address_policy`).

    The other parameters are :class:`~requests.adapters.HTTPAdapter`'s.
    """

    __attrs__ = [
        *HTTPAdapter.__attrs__,
        "timeout",
        "connect_timeout",
        "allowed_networks",
        "address_policy",
    ]

    def __init__(
        self,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        max_retries: Any = 0,
        pool_block: bool = False,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        allowed_networks: Iterable[str | Network] = (),
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.allowed_networks = tuple(_parse_network(network) for network in allowed_networks)
        self.address_policy = address_policy
        self._settings = {
            "pool_connections": pool_connections,
            "pool_maxsize": pool_maxsize,
            "max_retries": max_retries,
            "pool_block": pool_block,
        }
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        policy = getattr(self, "address_policy", None)
        if policy is not None:
            self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(policy)

    def with_address_policy(self, policy: AddressPolicy | None) -> BaseplateHTTPAdapter:
        """A new adapter with this one's settings and ``policy``."""
        return BaseplateHTTPAdapter(
            **self._settings,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            allowed_networks=self.allowed_networks,
            address_policy=policy,
        )

    def default_timeout(self) -> Timeout:
        """The ``timeout`` used for a call that gives none."""
        if self.connect_timeout is None:
            return self.timeout
        if self.timeout is None:
            return (self.connect_timeout, None)
        return (self.connect_timeout, self.timeout)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Timeout = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` (the default timeout when it has none; refused when the address
        policy does not allow where it goes)."""
        if timeout is None:
            timeout = self.default_timeout()
        if self.address_policy is not None and proxies and request.url:
            proxy = select_proxy(request.url, dict(proxies))
            if proxy:
                raise AddressNotAllowed(
                    f"refused to send {request.url} through the proxy {proxy}: the address "
                    "check cannot see where a proxy connects",
                    reason="proxy",
                    request=request,
                )
        try:
            return super().send(
                request,
                stream=stream,
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=dict(proxies) if proxies else None,
            )
        except _Refused as refused:
            raise AddressNotAllowed(
                str(refused), address=refused.address, reason=refused.reason, request=request
            ) from None


def http_adapter_from_config(
    app_config: Mapping[str, str], prefix: str, **kwargs: Any
) -> BaseplateHTTPAdapter:
    """Make an HTTP adapter (a pool of connections per host) from a configuration
    dictionary, for the clients of this module.

    The keys useful to :func:`http_adapter_from_config` should be prefixed, e.g.
    ``accounts.pool_maxsize``; the ``prefix`` argument (which ends with a dot) says which.
    Keyword arguments are passed to :class:`BaseplateHTTPAdapter` and take precedence over
    the configuration.

    Supported keys:

    * ``pool_connections``: how many hosts to keep a pool of connections for, 1 to
      :data:`~baseplate.config.MAX_POOL_SIZE` (default 10).
    * ``pool_maxsize``: how many connections to keep per host, 1 to
      :data:`~baseplate.config.MAX_POOL_SIZE` (default 10).
    * ``pool_block``: whether a call waits for a free connection when ``pool_maxsize`` are
      in use, instead of opening one more (default ``false``).
    * ``max_retries``: how many times to retry a failed DNS lookup or connection (never a
      request whose data went out), 0 to :data:`MAX_RETRIES` (default 0).
    * ``timeout``: a timespan (``2 seconds``) or number of seconds to wait for the server,
      connecting and each read, when a call gives no ``timeout``; more than zero, at most a
      day (default: wait forever, as ``requests`` does).
    * ``connect_timeout``: the same, for connecting only, when different.
    * ``allowed_networks``: a comma-separated list of networks (``10.1.0.0/16``) or
      addresses the clients' address check allows.

    A bad value raises :class:`~baseplate.config.ConfigurationError` naming the key.
    """
    pool_size = config.Optional(config.IntegerRange(1, config.MAX_POOL_SIZE), default=None)
    seconds = config.Optional(config.Seconds(allow_zero=False), default=None)
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "pool_connections": pool_size,
            "pool_maxsize": pool_size,
            "pool_block": config.Optional(config.Boolean, default=None),
            "max_retries": config.Optional(config.IntegerRange(0, MAX_RETRIES), default=None),
            "timeout": seconds,
            "connect_timeout": seconds,
            "allowed_networks": config.Optional(config.TupleOf(_parse_network), default=()),
        },
    )
    for key, value in options.items():
        if value is not None and value != ():
            kwargs.setdefault(key, value)
    return BaseplateHTTPAdapter(**kwargs)


# -- the context object ----------------------------------------------------------------------


def url_for_span(url: str | bytes | None) -> str:
    """``url`` as the ``http.url`` tag has it: without user name and password, each query
    value (or bare query item) replaced with ``REDACTED``, without fragment."""
    if url is None:
        return ""
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rpartition("@")[2]
    items = []
    for item in parts.query.split("&") if parts.query else ():
        name, equals, _ = item.partition("=")
        items.append(f"{name}={REDACTED}" if equals else REDACTED)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(items), ""))


def _response_length(response: requests.Response, streamed: bool) -> int | None:
    if not streamed:
        return len(response.content)
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit():
        return int(declared)
    return None


def _ca_bundle_from_environment(verify: Any) -> Any:
    if verify is True or verify is None:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


class BaseplateSession:
    """The context attribute: the request methods of a :class:`requests.Session`, each
    call a client span ``<name>.request``.

    Connections come from the client's adapter (shared by every request); each call gets a
    :class:`requests.Session` of its own, so cookies and other state are never shared
    between calls (keep them in the application when needed).
    """

    def __init__(
        self, adapter: HTTPAdapter, name: str, span: Span, *, propagate: bool = False
    ) -> None:
        self.adapter = adapter
        self.name = name
        self.span = span
        #: Whether calls carry the trace and edge headers (internal clients).
        self.propagate = propagate

    def request(
        self,
        method: str,
        url: str | bytes,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Timeout = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: bool | str | None = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        """Send a request (the arguments of :meth:`requests.Session.request`)."""
        prepared = self.prepare_request(
            requests.Request(
                method=method.upper(),
                url=url,
                headers=dict(headers) if headers else None,
                files=files,
                data=data or {},
                json=json,
                params=params or {},
                auth=auth,
                cookies=cookies,
                hooks=hooks,
            )
        )
        return self.send(
            prepared,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            stream=stream,
            verify=verify,
            cert=cert,
        )

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """Send a GET request (redirects followed unless ``allow_redirects=False``)."""
        return self.request("GET", url, **kwargs)

    def options(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """Send an OPTIONS request."""
        return self.request("OPTIONS", url, **kwargs)

    def head(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """Send a HEAD request (redirects not followed unless ``allow_redirects=True``)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def post(
        self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any
    ) -> requests.Response:
        """Send a POST request."""
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        """Send a PUT request."""
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        """Send a PATCH request."""
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """Send a DELETE request."""
        return self.request("DELETE", url, **kwargs)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """Make a :class:`requests.PreparedRequest` to send later with :meth:`send`."""
        return request.prepare()

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.mount("http://", self.adapter)
        session.mount("https://", self.adapter)
        if getattr(self.adapter, "address_policy", None) is not None:
            # no proxy from the environment (it would connect where no check can see), no
            # .netrc credentials for whoever the host is
            session.trust_env = False
        return session

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send a prepared request inside a client span ``<name>.request``.

        Takes the keyword arguments of :meth:`requests.Session.send` (``timeout``,
        ``allow_redirects``, ``stream``, ``verify``, ``cert``, ``proxies``).
        """
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        session = self._session()
        if not session.trust_env:
            kwargs["verify"] = _ca_bundle_from_environment(kwargs.get("verify"))
            kwargs.setdefault("proxies", {})
        streamed = bool(kwargs.get("stream"))
        with self.span.make_child(f"{self.name}.request") as span:
            span.set_tag("http.method", request.method)
            span.set_tag("http.url", url_for_span(request.url))
            if self.propagate:
                _add_trace_headers(request)
            with vendor_suppressed(_vendor_active()):
                response = session.send(request, **kwargs)
            span.set_tag("http.status_code", response.status_code)
            length = _response_length(response, streamed)
            if length is not None:
                span.set_tag(TAG_RESPONSE_LENGTH, length)
            if response.status_code >= 500 and span.otel_span is not None:
                span.otel_span.set_status(
                    Status(StatusCode.ERROR, f"HTTP {response.status_code} {response.reason}")
                )
        return response


def _add_trace_headers(request: requests.PreparedRequest) -> None:
    """Put the current span's trace and the request's Edge-Request in ``request``'s headers."""
    http_propagator().inject(request.headers)
    # the edge context goes to internal services whatever the trace formats configured
    if EDGE_REQUEST_HTTP_HEADER not in request.headers:
        request.headers[EDGE_REQUEST_HTTP_HEADER] = http_edge_request_value(edge_request())


# -- the context factories -------------------------------------------------------------------


class RequestsClient(ContextFactory):
    """Context factory for an HTTP client whose calls are client spans.

    The base of :class:`InternalRequestsClient` and :class:`ExternalRequestsClient`; on its
    own it sends no trace or edge header and checks no address.

    :param adapter: The connection pools to use (e.g. from :func:`http_adapter_from_config`);
        a default :class:`BaseplateHTTPAdapter` when None.
    :param allowed_networks: Networks (``"10.1.0.0/16"``, or :mod:`ipaddress` networks) the
        address check allows besides its defaults.
    :param resolve: How host names are resolved at connect time (``(host, port)`` to
        :func:`socket.getaddrinfo` entries); the system resolver by default.
    """

    #: Whether calls carry the trace and edge headers.
    propagate = False

    def __init__(
        self,
        adapter: HTTPAdapter | None = None,
        *,
        allowed_networks: Iterable[str | Network] = (),
        resolve: Resolver | None = None,
    ) -> None:
        adapter = adapter if adapter is not None else BaseplateHTTPAdapter()
        networks = [_parse_network(network) for network in allowed_networks]
        networks.extend(getattr(adapter, "allowed_networks", ()))
        policy = self.address_policy(networks, resolve)
        if policy is not None:
            if not isinstance(adapter, BaseplateHTTPAdapter):
                raise TypeError(
                    f"{type(self).__name__} checks the addresses it connects to, which needs "
                    f"a BaseplateHTTPAdapter (http_adapter_from_config makes one), not "
                    f"{type(adapter).__name__}"
                )
            adapter = adapter.with_address_policy(policy)
        #: The adapter calls go through.
        self.adapter = adapter

    def address_policy(
        self, allowed_networks: Sequence[Network], resolve: Resolver | None
    ) -> AddressPolicy | None:
        """The address check of this client's connections (None: no check)."""
        return None

    def make_object_for_context(self, name: str, server_span: Span) -> BaseplateSession:
        """Return a :class:`BaseplateSession` for this request."""
        return BaseplateSession(self.adapter, name, server_span, propagate=self.propagate)


class InternalRequestsClient(RequestsClient):
    """Context factory for calls to services of the same deployment (trusted, internal).

    Calls carry the trace (the configured formats' headers) and ``X-Edge-Request``, and
    connect only to loopback and private addresses (:data:`INTERNAL_NETWORKS`) and
    ``allowed_networks``, since the edge context holds the user's authentication token.

    .. warning:: Do not request URLs a user chose with this client (server-side request
       forgery): use :class:`ExternalRequestsClient` for those.
    """

    propagate = True

    def address_policy(
        self, allowed_networks: Sequence[Network], resolve: Resolver | None
    ) -> AddressPolicy:
        return AddressPolicy.internal(allowed_networks, resolve)


class ExternalRequestsClient(RequestsClient):
    """Context factory for calls to third-party services (untrusted, external).

    Calls carry no trace and no edge header, and never connect to the addresses of
    :data:`DENIED_NETWORKS` or :data:`METADATA_NETWORKS` unless they are in
    ``allowed_networks``: :class:`AddressNotAllowed` is raised instead.
    """

    def address_policy(
        self, allowed_networks: Sequence[Network], resolve: Resolver | None
    ) -> AddressPolicy:
        return AddressPolicy.external(allowed_networks, resolve)


__all__ = [
    "DENIED_NETWORKS",
    "INTERNAL_NETWORKS",
    "MAX_RETRIES",
    "METADATA_NETWORKS",
    "AddressNotAllowed",
    "AddressPolicy",
    "BaseplateHTTPAdapter",
    "BaseplateSession",
    "ExternalRequestsClient",
    "InternalRequestsClient",
    "RequestsClient",
    "http_adapter_from_config",
    "url_for_span",
]
