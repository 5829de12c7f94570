"""The HTTP API: thin routes over workflow start, query, signal, cancel and DB reads."""
