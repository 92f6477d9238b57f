"""baseplate: reddit's service framework API on OpenTelemetry."""
