"""chaosk3s: prove that K3s split-role clusters heal.

A Chaos Toolkit extension: actions in chaosk3s.actions, probes in
chaosk3s.probes, the control in chaosk3s.control.
"""

from chaoslib.discovery.discover import (
    discover_actions,
    discover_probes,
    initialize_discovery_result,
)

__version__ = "0.1.0"
__all__ = ["discover", "__version__"]


def discover(discover_system: bool = True) -> dict:
    """What `chaos discover chaostoolkit-k3s` reports: every action as an
    action and every probe as a probe, with types and docstrings."""
    discovery = initialize_discovery_result(
        "chaostoolkit-k3s", __version__, "k3s")
    discovery["activities"].extend(discover_actions("chaosk3s.actions"))
    discovery["activities"].extend(discover_probes("chaosk3s.probes"))
    return discovery
