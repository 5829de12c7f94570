"""What the worker, the API and the CLI share: settings, tables, the run and event model."""
