"""Degraded links as a plan: which node's tc sends what to which peer
through netem. Shared by the degrade actions and `chaosk3s plan`;
changes nothing."""

from chaosk3s.errors import SpecError
from chaosk3s.faults.netem import parse_rate_bits, validate_netem
from chaosk3s.model import Degradation, FaultPlan, Flap, Netem, Node


def netem_of(args: dict) -> Netem:
    """The impairment an action's (coerced) arguments ask for;
    SpecError if it is empty or impossible."""
    netem = Netem(delay_ms=float(args["delay_ms"]),
                  jitter_ms=float(args["jitter_ms"]),
                  correlation=float(args["correlation"]),
                  loss=float(args["loss"]),
                  duplicate=float(args["duplicate"]),
                  corrupt=float(args["corrupt"]),
                  reorder=float(args["reorder"]),
                  rate_bits=parse_rate_bits(args["rate"]))
    validate_netem(netem, "degraded link")
    return netem


def flap_of(args: dict) -> Flap | None:
    """The flapping schedule an action's (coerced) arguments ask for:
    None without a period; checked with the plan (faults.flap)."""
    period = float(args.get("flap_period") or 0)
    if not period:
        return None
    return Flap(period, period * float(args["flap_duty"]) / 100,
                int(args["flap_count"]))


def plan_degradation(group: list[Node], peers: list[Node], netem: Netem,
                     direction: str, ports: list | None, ttl: float,
                     fault_id: str, flap: Flap | None = None) -> FaultPlan:
    """tc is egress only: `to` degrades what group's nodes send to the
    peers (tc on the group), `from` what the peers send to the group (tc
    on the peers), `both` both (tc on both sides). Every address of
    each far end is matched."""
    ends = []
    if direction in ("both", "to"):
        ends += [(a, b) for a in group for b in peers]
    if direction in ("both", "from"):
        ends += [(b, a) for a in group for b in peers]
    items = tuple(dict.fromkeys(
        Degradation(node=a.name, peer=b.name, peer_address=address,
                    netem=netem, ports=tuple(int(p) for p in ports or ()))
        for a, b in ends if a.name != b.name
        for address in b.all_addresses))
    if not items:
        raise SpecError("the two groups leave no link to degrade (they "
                        "are the same nodes); nothing was changed")
    return FaultPlan(run_id=fault_id, degradations=items,
                     ttl_seconds=float(ttl), flap=flap)


def describe(netem: Netem) -> str:
    """The impairment in a few words, for the ledger and logs."""
    parts = []
    if netem.delay_ms:
        parts.append(f"delay {netem.delay_ms:g}ms" + (
            f" ±{netem.jitter_ms:g}ms" if netem.jitter_ms else ""))
    for name in ("loss", "duplicate", "corrupt", "reorder"):
        if getattr(netem, name):
            parts.append(f"{name} {getattr(netem, name):g}%")
    if netem.rate_bits:
        parts.append(f"rate {netem.rate_bits}bit/s")
    return ", ".join(parts)
