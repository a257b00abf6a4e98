"""share-gateway: per-client keys in front of the External Share for Confluence Web API."""

__version__ = "0.1.0"
