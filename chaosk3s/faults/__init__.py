"""Faults as data turned into commands: partitions (iptables chains that
chaosk3s owns and that expire on the node itself)."""

from chaosk3s.faults.partition import (
    Management,
    NodeSetup,
    apply_script,
    chain_name,
    dry_run,
    heal_script,
    node_rules,
    readback_script,
    render_dry_run,
    validate_plan,
)
from chaosk3s.faults.readback import ActiveCut, ActiveFault, parse_readback

__all__ = ["ActiveCut", "ActiveFault", "Management", "NodeSetup",
           "apply_script", "chain_name", "dry_run", "heal_script",
           "node_rules", "parse_readback", "readback_script",
           "render_dry_run", "validate_plan"]
