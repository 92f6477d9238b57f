"""Fault injection: a real baseplate-serve under load while its telemetry back ends fail."""
