"""The sync server: HTTP routes, deciding ops into events, auth, settings and the CLI."""
