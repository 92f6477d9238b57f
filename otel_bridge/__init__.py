"""The adapter between baseplate span semantics and OpenTelemetry."""
