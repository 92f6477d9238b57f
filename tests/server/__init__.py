"""Tests of the servers and command-line tools (baseplate.server)."""
