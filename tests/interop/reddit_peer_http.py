"""A Pyramid service on reddit's own baseplate, run by ``test_reddit_http.py``.

Not imported by the test process: the tests run it with the interpreter of
``.services/reddit-baseplate`` and ``-I``, where ``import baseplate`` is reddit's package. It
serves a Pyramid app configured with reddit's ``BaseplateConfigurator`` (trusting trace
headers, with an edge context factory) on gevent's WSGI server, as ``baseplate-serve`` does.
The first line on stdout is ``{"port": N}``; then every request to ``/show`` prints what its
server span saw as one JSON line, which is also the response body.

Usage: ``python -I reddit_peer_http.py --secrets SECRETS_JSON``
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import socket
import sys
from typing import Any


def emit(payload: Any) -> str:
    line = json.dumps(payload, sort_keys=True)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return line


def edge_fields(edge_context: Any) -> dict[str, Any]:
    """The parts of an edge context that need no authentication token."""
    return {
        "loid": edge_context.user.loid,
        "cookie_created_ms": edge_context.user.cookie_created_ms,
        "session_id": edge_context.session.id,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", required=True)
    args = parser.parse_args()

    from gevent import monkey

    monkey.patch_all()  # as reddit's baseplate-serve does before anything else

    import warnings

    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer
    from pyramid.config import Configurator
    from pyramid.response import Response

    from baseplate.core import Baseplate, EdgeRequestContextFactory
    from baseplate.integration.pyramid import BaseplateConfigurator
    from baseplate.secrets import SecretsStore

    factory = EdgeRequestContextFactory(SecretsStore(args.secrets))

    def show(request: Any) -> Response:
        span = request.trace
        raw = getattr(request, "raw_request_context", None)
        edge_context = getattr(request, "request_context", None)
        seen: dict[str, Any] = {
            "span": {
                "trace_id": span.trace_id,
                "parent_id": span.parent_id,
                "span_id": span.id,
                "sampled": span.sampled,
                "flags": span.flags,
            },
            "name": span.name,
            "headers": {
                name.lower(): value
                for name, value in request.headers.items()
                if name.lower().startswith("x-") or name.lower() in ("traceparent", "b3")
            },
            # what the integration attached, as it attached it
            "raw_request_context": raw if raw is None or isinstance(raw, str) else repr(raw),
            "request_context": edge_fields(edge_context) if edge_context else None,
            "decoded": None,
        }
        # the header as WIRE.md has it (base64 of the Thrift bytes), read by reddit's factory
        if isinstance(raw, str) and raw:
            try:
                payload = base64.b64decode(raw, validate=True)
            except binascii.Error:
                pass
            else:
                seen["decoded"] = edge_fields(factory.from_upstream(payload))
        return Response(body=emit(seen).encode(), content_type="application/json")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trust_trace_headers is deprecated in 0.30
        configurator = BaseplateConfigurator(
            Baseplate(), trust_trace_headers=True, edge_context_factory=factory
        )
    config = Configurator()
    config.include(configurator.includeme)
    config.add_route("show", "/show")
    config.add_view(show, route_name="show")
    app = config.make_wsgi_app()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = WSGIServer(listener, application=app, spawn=Pool(size=8), log=None)
    emit({"port": listener.getsockname()[1]})
    server.serve_forever()


if __name__ == "__main__":
    main()
