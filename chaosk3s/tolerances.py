"""Tolerance helpers for steady-state probes that return collections.

Chaos Toolkit reads a 2-item list tolerance as a range and never matches
`[]`, so "no node is X" needs a probe tolerance:
``{"type": "probe", "name": "none", "provider": {"type": "python",
"module": "chaosk3s.tolerances", "func": "is_empty", "arguments": {}}}``.
"""

__all__ = ["is_empty"]


def is_empty(value: object = None) -> bool:
    """True when the probe returned an empty list (or nothing)."""
    return not value
