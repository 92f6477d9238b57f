"""Call the example Greeter service: ``python -m examples.thrift_service.client NAME``.

The call is made the way a baseplate service makes it, through a
:class:`~baseplate.context.thrift.ThriftContextFactory` inside a span, so the client prints
its own request tree (span ``greeter.greet``) and the service continues the same trace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from baseplate import tracing_client_from_config
from baseplate.context.thrift import ThriftContextFactory
from baseplate.core import Baseplate, RequestContext
from baseplate.server import flush_telemetry
from baseplate.thrift_pool import thrift_pool_from_config
from examples.thrift_service.idl import greeter_module, greeter_types


def main(argv: Sequence[str] | None = None) -> int:
    """Greet each name given on the command line; print the replies."""
    parser = argparse.ArgumentParser(description="Call the example Greeter Thrift service.")
    parser.add_argument("names", nargs="+", metavar="NAME", help="who to greet")
    parser.add_argument("--endpoint", default="127.0.0.1:9091", help="host:port of the service")
    args = parser.parse_args(argv)

    app_config = {
        "tracing.service_name": "greeter-client",
        "tracing.sample_rate": "100%",
        "tracing.exporter": "console",
        "greeter.endpoint": args.endpoint,
        "greeter.timeout": "2 seconds",
    }
    baseplate = Baseplate()
    baseplate.configure_tracing(tracing_client_from_config(app_config))
    pool = thrift_pool_from_config(app_config, prefix="greeter.")
    baseplate.add_to_context("greeter", ThriftContextFactory(pool, greeter_module().Client))

    status = 0
    for name in args.names:
        context = RequestContext()
        with baseplate.make_server_span(context, "client"):
            try:
                print(context.greeter.greet(name), flush=True)
            except greeter_types().NameTooLong as exc:
                print(f"error: {exc.message}", file=sys.stderr, flush=True)
                status = 1
    flush_telemetry()
    return status


if __name__ == "__main__":
    sys.exit(main())
