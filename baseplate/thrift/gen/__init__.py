"""Python code generated from baseplate/thrift/baseplate.thrift by scripts/gen-thrift.sh."""
