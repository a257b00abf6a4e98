"""The request path: client address, checks, operations and the upstream client."""
