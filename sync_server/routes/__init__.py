"""HTTP routes, one module per area of the wire contract (PROTOCOL.md)."""
