"""OpenTelemetry span exporters and processors used by baseplate."""
