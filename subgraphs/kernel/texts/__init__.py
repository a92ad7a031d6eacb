"""The messages a client can see, by stable key, one module per language (kernel/i18n.py uses them)."""
