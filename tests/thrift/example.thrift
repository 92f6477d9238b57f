// A service for the Thrift tests (compiled at test time by the `example_service` fixture).

include "baseplate.thrift"

namespace py example_service

exception ExpectedError {
    1: string message;
}

service ExampleService extends baseplate.BaseplateService {
    // Returns the text, or raises the declared ExpectedError when text is "expected".
    string example(1: string text) throws (1: ExpectedError error),
    // Raises an exception the IDL does not declare.
    void fail_unexpectedly(),
    // Calls example(text) on the downstream service and returns its answer.
    string relay(1: string text),
}
