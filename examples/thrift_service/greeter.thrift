// The example Thrift service: a greeter that counts greetings in Redis.
//
// The Python code is generated on first use by examples/thrift_service/idl.py (or by
// hand: thrift --gen py -I baseplate/thrift -out examples/thrift_service/gen greeter.thrift).

include "baseplate.thrift"

namespace py greeter

exception NameTooLong {
    1: string message;
    2: i32 max_length;
}

service Greeter extends baseplate.BaseplateService {
    // Greet someone by name; raises NameTooLong (a declared error, not a failure) for long names.
    string greet(1: string name) throws (1: NameTooLong error),
}
