"""Load, fault and benchmark tooling for the service."""
