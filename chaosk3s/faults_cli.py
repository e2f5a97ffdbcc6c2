"""`chaosk3s faults [--cleanup] [--json]` and `chaosk3s cleanup [--json]`:
what chaosk3s has active on a target, and healing it.

Two sources, both shown: the ledgers on this machine (what a run
recorded, also after the run died) and the nodes themselves (every
chaosk3s chain and node-side start timer, read from iptables and the
timer files: the truth, whoever injected it). A node that cannot be read
makes the listing incomplete, which the exit code says (1).
"""

from __future__ import annotations

import json

import click

from chaosk3s.clitools import friendly

_friendly = friendly()
_RECORDED = ("kind", "nodes", "open_nodes", "description", "started_at",
             "errors")


def _recorded(name: str) -> tuple[list[dict], list[str]]:
    """Open faults of this machine's ledgers for target name."""
    from chaosk3s.ledger import open_ledgers
    ledgers, problems = open_ledgers(name)
    found = [{"run_id": ledger.run_id, "fault_id": entry["id"],
              **{key: entry.get(key) for key in _RECORDED}}
             for ledger in ledgers for entry in ledger.open_faults()]
    return found, problems


def _on_nodes(configuration: dict) -> tuple[list[dict], list[str]]:
    """Every chaosk3s chain and start timer on every reachable node, and
    a line per node that could not be read."""
    from chaosk3s.faults.apply import read_active
    from chaosk3s.safe_cleanup import sweep_nodes
    from chaosk3s.target import get_target
    target = get_target(configuration)
    transports = {n.name: target.transport(n) for n in sweep_nodes(target)}
    outcomes = read_active(transports, target.node_state_dir, strict=False)
    active = [fault.as_dict() for o in outcomes if o.ok for fault in o.active]
    unread = [f"node {o.node} cannot be read: {o.error}"
              for o in outcomes if not o.ok]
    return active, unread


def listing(configuration: dict) -> dict:
    """{"target", "recorded", "on_nodes", "problems"} (JSON-ready)."""
    from chaosk3s.target import target_name
    recorded, problems = _recorded(target_name(configuration))
    on_nodes, unread = _on_nodes(configuration)
    return {"target": target_name(configuration), "recorded": recorded,
            "on_nodes": on_nodes, "problems": problems + unread}


def _fault_line(fault: dict) -> str:
    if fault["kind"] == "stop":
        timer = fault.get("timer") or {}
        return (f"{fault['node']}: k3s stopped by "
                f"{fault['run_id'] or '?'}, starts by itself at "
                f"{timer.get('expires_at', '?')} (epoch)")
    peers = sorted({c["peer"] or c["peer_address"] for c in fault["cuts"]})
    timer = fault.get("timer")
    ends = f", expires at {timer['expires_at']} (epoch)" if timer else \
        ", no expiry timer"
    return (f"{fault['node']}: chain {fault['chain']} (fault "
            f"{fault['run_id'] or '?'}) cuts {', '.join(peers) or 'nothing'}"
            f"{ends}")


def echo_listing(found: dict) -> None:
    for fault in found["recorded"]:
        click.echo(f"recorded: run {fault['run_id']} fault "
                   f"{fault['fault_id']} ({fault['kind']}) on "
                   f"{', '.join(fault['open_nodes'] or fault['nodes'])}, "
                   f"since {fault['started_at']}: {fault['description']}")
    for fault in found["on_nodes"]:
        click.echo(f"on node {_fault_line(fault)}")
    for line in found["problems"]:
        click.echo(f"PROBLEM: {line}", err=True)
    click.echo(f"{len(found['recorded'])} recorded fault(s) open, "
               f"{len(found['on_nodes'])} active on the nodes of "
               f"{found['target']}")


def cleanup_dict(report) -> dict:
    return {"ok": report.ok, "healed": report.healed,
            "swept": report.swept, "open": report.open}


def echo_cleanup(report) -> None:
    for line in report.healed:
        click.echo(f"healed {line}")
    for line in report.swept:
        click.echo(line)
    summary = (f"{len(report.healed)} recorded fault(s) healed, "
               f"{len(report.swept)} found on the nodes and healed")
    if report.ok:
        click.echo(f"{summary}; none remain")
        return
    for line in report.open:
        click.echo(f"STILL OPEN: {line}")
    click.echo(f"{summary}; {len(report.open)} still open (they also "
               f"expire on the nodes; run `chaosk3s cleanup` again once "
               f"the nodes answer)", err=True)


def _configuration(target: str | None) -> dict:
    return {"target": target} if target else {}


TARGET = click.option("--target", default=None, help="`lab` (default, or "
                      "$CHAOSK3S_TARGET) or an inventory.")
AS_JSON = click.option("--json", "as_json", is_flag=True,
                       help="Print one JSON object instead of lines.")


@click.command("cleanup")
@TARGET
@AS_JSON
@_friendly
def cleanup_command(target: str | None, as_json: bool) -> None:
    """Heal every fault chaosk3s injected on a target, whoever made it:
    every open ledger, then every chaosk3s chain and node-side start
    left on any node. Exits 1, listing them, if any fault stays open."""
    from chaosk3s.safe_cleanup import heal_everything
    report = heal_everything(_configuration(target))
    if as_json:
        click.echo(json.dumps(cleanup_dict(report), indent=2))
    else:
        echo_cleanup(report)
    if not report.ok:
        raise SystemExit(1)


@click.command("faults")
@TARGET
@click.option("--cleanup", "heal", is_flag=True, help="Then heal them, "
              "as `chaosk3s cleanup` does, and list what is left.")
@AS_JSON
@_friendly
def faults_command(target: str | None, heal: bool, as_json: bool) -> None:
    """List what chaosk3s has active on a target: the open faults this
    machine's ledgers recorded and every chaosk3s chain and node-side
    start timer on the nodes. Exits 1 if a node could not be read (or,
    with --cleanup, if a fault stays open)."""
    configuration = _configuration(target)
    found = listing(configuration)
    result: dict = {"active": found}
    report = None
    if heal:
        from chaosk3s.safe_cleanup import heal_everything
        report = heal_everything(configuration)
        result["cleanup"] = cleanup_dict(report)
        result["after"] = listing(configuration)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        echo_listing(found)
        if report is not None:
            click.echo("cleanup:")
            echo_cleanup(report)
            echo_listing(result["after"])
    last = result.get("after", found)
    if last["problems"] or (heal and not result["cleanup"]["ok"]):
        raise SystemExit(1)

