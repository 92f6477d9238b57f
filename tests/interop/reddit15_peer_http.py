"""A Pyramid service on reddit's baseplate 1.5.5 calling back with reddit's own HTTP client.

Run by ``test_reddit15_http_round_trip.py`` with the interpreter of
``.services/reddit-baseplate-1.5`` and ``-I`` (``import baseplate`` is reddit's 1.5.5). It
serves reddit's ``BaseplateConfigurator`` (trusting headers through ``StaticTrustHandler``)
on gevent's WSGI server; ``/relay?to=URL`` calls ``URL`` through reddit's
``InternalRequestsClient`` (``request.back``) and answers, also printing it as one JSON line,
what its server span saw, the headers it got, and the body ``URL`` answered. The first line
on stdout is ``{"port": N}``. ``advocate``, which reddit's client imports, is stood in for
by ``reddit15_stubs/advocate.py`` (see there).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any


def emit(payload: Any) -> str:
    line = json.dumps(payload, sort_keys=True)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return line


def main() -> None:
    from gevent import monkey

    monkey.patch_all()  # as reddit's baseplate-serve does before anything else

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reddit15_stubs"))

    from baseplate.frameworks.pyramid import BaseplateConfigurator, StaticTrustHandler
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIServer
    from pyramid.config import Configurator
    from pyramid.response import Response

    from baseplate import Baseplate
    from baseplate.clients.requests import InternalRequestsClient

    baseplate = Baseplate({"back.pool_maxsize": "4"})
    baseplate.configure_context({"back": InternalRequestsClient()})

    def relay(request: Any) -> Response:
        span = request.trace
        seen: dict[str, Any] = {
            "span": {
                "trace_id": span.trace_id,
                "parent_id": span.parent_id,
                "span_id": span.id,
                "sampled": span.sampled,
                "flags": span.flags,
            },
            "headers": {
                name.lower(): value
                for name, value in request.headers.items()
                if name.lower().startswith("x-") or name.lower() in ("traceparent", "b3")
            },
        }
        seen["back"] = request.back.get(request.params["to"], timeout=30).json()
        return Response(body=emit(seen).encode(), content_type="application/json")

    configurator = BaseplateConfigurator(
        baseplate, header_trust_handler=StaticTrustHandler(trust_headers=True)
    )
    config = Configurator()
    config.include(configurator.includeme)
    config.add_route("relay", "/relay")
    config.add_view(relay, route_name="relay")
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
