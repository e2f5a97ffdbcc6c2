"""Tolerance helpers for steady-state probes that return collections.

Chaos Toolkit reads a 2-item list tolerance as a range and never matches
`[]`, so "no node is X" needs a probe tolerance:
``{"type": "probe", "name": "none", "provider": {"type": "python",
"module": "chaosk3s.tolerances", "func": "is_empty", "arguments": {}}}``;
"every figure under its bound" is ``within`` with ``{"limits": {KEY:
BOUND}}`` (for probes that return a mapping, such as ready_flaps and
api_latency).
"""

__all__ = ["is_empty", "within", "nothing_lost"]


def is_empty(value: object = None) -> bool:
    """True when the probe returned an empty list (or nothing)."""
    return not value


def within(value: object = None, limits: dict = None) -> bool:
    """True when the probe returned a mapping whose every key in limits
    is a number at most its limit (a missing or null figure fails:
    nothing measured is no proof). Limits may be strings ("1.5")."""
    if not isinstance(value, dict):
        return False
    for key, limit in (limits or {}).items():
        figure = value.get(key)
        if isinstance(figure, bool) or not isinstance(figure, (int, float)):
            return False
        if figure > float(limit):
            return False
    return True


def nothing_lost(value: object = None) -> bool:
    """True when `marker_readback` found every marker it checked as
    written (its `lost` list is empty)."""
    return isinstance(value, dict) and not value.get("lost")
