"""The Django adapter: the only part of `resilience_async` that imports Django."""
