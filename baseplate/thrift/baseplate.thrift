// Baseplate's own Thrift definitions: the health-check service every baseplate
// service exposes, and the structs carried in the "Edge-Request" header.
//
// Field ids and names are part of the wire format shared with other baseplate
// services; never renumber them. Python code is generated into
// baseplate/thrift/gen/baseplate/ by scripts/gen-thrift.sh. The Python namespace is the
// 0.28 one, so service IDLs that include this file import baseplate.thrift.ttypes and
// baseplate.thrift.BaseplateService, which baseplate.thrift maps to the generated modules.

namespace py baseplate.thrift
namespace go reddit.baseplate
namespace java com.reddit.baseplate

/** A raw authentication token as returned by the authentication service. */
typedef string AuthenticationToken

/** A two-character ISO 3166-1 country code. */
typedef string CountryCode

/** An integer measuring the number of milliseconds of UTC time since epoch. */
typedef i64 TimestampMilliseconds

/** The base for any baseplate-based service.

Services should extend this one so that common tools (the health checker) can
talk to every service the same way.
*/
service BaseplateService {
    /** Return whether or not the service is healthy.

    Return true when healthy; return false or raise when not.
    */
    bool is_healthy(),
}

/** The parts of the LoID cookie propagated between services (Edge-Request). */
struct Loid {
    /** The ID of the LoID cookie, in fullname format (t2_...). */
    1: string id;
    /** When the LoID cookie was created, in epoch milliseconds. */
    2: TimestampMilliseconds created_ms;
}

/** The parts of the session tracker cookie propagated between services (Edge-Request). */
struct Session {
    /** The ID of the session tracker cookie. */
    1: string id;
}

/** The device making the original request (Edge-Request). */
struct Device {
    /** The ID of the device. */
    1: string id;
}

/** The service that originated the request (Edge-Request). */
struct OriginService {
    /** The name of the origin service. */
    1: string name;
}

/** Geolocation of the original requester (Edge-Request). */
struct Geolocation {
    /** The country code of the requesting client. */
    1: CountryCode country_code;
}

/** A human-readable identifier of the original request (Edge-Request). */
struct RequestId {
    /** The readable request id. */
    1: string readable_id;
}

/** The payload of the "Edge-Request" header, serialised with TBinaryProtocol.

Applications use it through baseplate.core.EdgeRequestContext, not directly.
*/
struct Request {
    1: Loid loid;
    2: Session session;
    3: AuthenticationToken authentication_token;
    4: Device device;
    5: OriginService origin_service;
    6: Geolocation geolocation;
    7: optional RequestId request_id;
}
