"""Integrations of baseplate with application frameworks (Thrift, Pyramid)."""
