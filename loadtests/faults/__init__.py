"""Faults to inject into the local stack: network (the fault proxy), processes, SQL."""
