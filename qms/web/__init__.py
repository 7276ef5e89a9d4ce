"""Web glue: the app factory, per-request database sessions, layout, error pages."""
