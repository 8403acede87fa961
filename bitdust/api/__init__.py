"""JSON-RPC API: server, method table, result shapes, and a Python client."""
