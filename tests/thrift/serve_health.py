"""A BaseplateService server for tests that kill their server: ``serve_health.py PORT``.

Prints ``listening`` once it accepts connections, then serves until killed.
"""

from __future__ import annotations

import socket
import sys

from thrift.protocol.THeaderProtocol import THeaderProtocolFactory
from thrift.server.TServer import TThreadedServer
from thrift.transport.TSocket import TServerSocket
from thrift.transport.TTransport import TTransportFactoryBase

from baseplate.thrift.gen.baseplate import BaseplateService


class Healthy(BaseplateService.Iface):
    def is_healthy(self) -> bool:
        return True


def main() -> None:
    transport = TServerSocket(host="127.0.0.1", port=int(sys.argv[1]), socket_family=socket.AF_INET)
    server = TThreadedServer(
        BaseplateService.Processor(Healthy()),
        transport,
        TTransportFactoryBase(),
        THeaderProtocolFactory(),
        daemon=True,
    )
    transport.listen()
    # TThreadedServer.serve() calls listen() again; keep the socket we announced instead.
    transport.listen = lambda: None  # type: ignore[method-assign]
    print("listening", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
