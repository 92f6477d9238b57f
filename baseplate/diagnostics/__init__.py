"""Built-in diagnostics: logging, metrics, tracing export and error reporting."""
