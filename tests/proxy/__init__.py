"""The request path, tested on real servers and real ports."""
