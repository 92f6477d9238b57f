// A service for the edge context end-to-end tests (compiled at test time by the
// `edge_hops` fixture): each hop answers or passes the call on to the next hop.

include "baseplate.thrift"

namespace py edge_hops

service EdgeHop extends baseplate.BaseplateService {
    // Returns a description of what this hop (and the hops after it) saw.
    string relay(1: string text),
}
