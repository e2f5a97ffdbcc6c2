"""The chaosk3s command."""

import dataclasses
import json
import sys
import time

import click

try:
    from chaostoolkit.commands.run import validate_vars
except ImportError:  # chaostoolkit 1.18 has all its commands in one module
    from chaostoolkit.cli import validate_vars

from chaosk3s.clitools import friendly
from chaosk3s.consent_cli import abort_command, consent_command
from chaosk3s.faults_cli import cleanup_command, faults_command
from chaosk3s.gameday.cli import gameday_group
from chaosk3s.matrix_cli import matrix_command
from chaosk3s.report.cli import report_command

_friendly = friendly()


def _progress(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chaostoolkit-k3s")
def main() -> None:
    """Prove that K3s split-role clusters heal."""


main.add_command(report_command)
main.add_command(gameday_group)
main.add_command(consent_command)
main.add_command(abort_command)
main.add_command(cleanup_command)
main.add_command(faults_command)
main.add_command(matrix_command)


@main.command("plan")
@click.argument("experiment", type=click.Path(exists=True, dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="KEY[:TYPE]=VALUE",
              callback=validate_vars,
              help="Override a configuration key, exactly as `chaos run "
              "--var` (TYPE: int, float, bytes...).")
@click.option("--var-file", "var_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A JSON/YAML file of configuration and secrets, or a "
              ".env file, exactly as `chaos run --var-file`.")
@click.option("--scripts", is_flag=True,
              help="Also print the full shell script run on each node.")
@_friendly
def plan_command(experiment: str, variables: dict, var_files: tuple,
                 scripts: bool) -> None:
    """Print what EXPERIMENT would change on which node, or what `chaos
    run` would refuse it for; change nothing."""
    from chaosk3s.plan import Refused, describe
    try:
        click.echo(describe(experiment, variables, var_files, scripts))
    except Refused as exc:
        click.echo("chaos run would refuse this run (nothing would be "
                   "injected):", err=True)
        for line in str(exc).splitlines():
            click.echo(f"  {line}", err=True)
        sys.exit(1)


@main.command("variables")
@click.argument("experiments", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@_friendly
def variables_command(experiments: tuple[str, ...]) -> None:
    """Print the variables each EXPERIMENT declares (type, default,
    environment variable, meaning) as Markdown tables."""
    from pathlib import Path

    from chaosk3s.variables import markdown
    click.echo(markdown([Path(e) for e in experiments]), nl=False)


def _lab():
    """The lab's host side, imported by the lab commands only: the
    extension alone imports nothing of the lab."""
    from chaosk3s.lab.cluster import Lab
    return Lab()


@main.group()
def lab() -> None:
    """The embedded lab: an emulated split-role K3s cluster."""


@lab.command("up")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False),
              help="Lab spec YAML (default: the #11311 reproduction).")
@click.option("--k3s-version", help="K3s release to emulate, e.g. "
              "v1.28.15+k3s1 (#11311) or v1.28.15+k3s-2d0661e3 (fixed); "
              "`chaosk3s lab releases` lists them.")
@click.option("--ssh", is_flag=True, help="Run sshd in every node and "
              "reach nodes over SSH in the inventory (not ip netns exec).")
@click.option("--ssh-sudo", is_flag=True, help="As --ssh, logging in as a "
              "non-root operator account (created for the lab, removed by "
              "lab down) with become: sudo.")
@click.option("--dual-stack", is_flag=True, help="IPv6 too: the bridge "
              "and every node get an address in fd13:11::/64 (or the "
              "spec's subnet6), and nodes report both.")
@_friendly
def lab_up(spec_path: str | None, k3s_version: str | None,
           ssh: bool, ssh_sudo: bool, dual_stack: bool) -> None:
    """Create the lab and wait until it is ready."""
    from chaosk3s.lab.spec import dual_stack as with_dual_stack
    from chaosk3s.lab.spec import load_spec
    spec = load_spec(spec_path, k3s_version)
    if ssh or ssh_sudo:
        spec = dataclasses.replace(spec, ssh=True,
                                   ssh_sudo=ssh_sudo or spec.ssh_sudo)
    if dual_stack:
        spec = with_dual_stack(spec)
    lab_ = _lab()
    started = time.monotonic()
    lab_.up(spec, progress=_progress)
    _progress(f"lab up in {time.monotonic() - started:.1f}s: "
              f"{len(spec.nodes)} nodes, K3s {spec.release.version} "
              f"({spec.release.family})")
    click.echo(f"state:      {lab_.state.root}")
    click.echo("status:     chaosk3s lab status")
    click.echo("kubeconfig: export KUBECONFIG=$(chaosk3s lab kubeconfig "
               "| tail -n1)")
    click.echo("remove it:  chaosk3s lab down")


@lab.command("releases")
def lab_releases() -> None:
    """Every K3s release the lab emulates, its family and its source."""
    from chaosk3s.lab.releases import release_table
    rows = release_table()
    click.echo(f"{'release(s)':<24} {'family':<7} {'#11333 (C7)':<12} "
               f"source")
    for row in rows:
        c7 = "fixed" if row["bootstrap_fix"] else "affected"
        click.echo(f"{row['versions']:<24} {row['family']:<7} {c7:<12} "
                   f"{row['source']}")
    click.echo("families: buggy = K3s #11311 (nodes stay pinned to an "
               "etcd-only server), fix1 = PR #11319 (#11349 still "
               "affected), rework = PR #11329; see docs/k3s-behaviour.md")


@lab.command("down")
@_friendly
def lab_down() -> None:
    """Remove every process, namespace and link the lab made."""
    _lab().down(progress=_progress)


@lab.command("status")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object instead of lines.")
@_friendly
def lab_status(as_json: bool) -> None:
    """One line per node: name, role, address, join server, services."""
    lab_ = _lab()
    spec = lab_.spec()
    rows = lab_.status()
    health = [row["services"]["etcd-health"] for row in rows
              if "etcd-health" in row["services"]]
    healthy = health.count("healthy")
    quorum = healthy > len(health) // 2
    if as_json:
        click.echo(json.dumps({
            "release": spec.release.version, "family": spec.release.family,
            "subnet": str(spec.subnet), "state": str(lab_.state.root),
            "nodes": [{**row, "join": None if row["join"] == "-" else
                        row["join"]} for row in rows],
            "etcd": {"members": len(health),
                                    "healthy": healthy, "quorum": quorum}},
            indent=2))
        return
    click.echo(f"K3s {spec.release.version} ({spec.release.family}), "
               f"subnet {spec.subnet}, state {lab_.state.root}")
    for row in rows:
        services = " ".join(f"{k}={v}" for k, v in row["services"].items())
        click.echo(f"{row['name']:<16} {row['role']:<14} "
                   f"{row['address']:<15} join={row['join']:<14} {services}")
    click.echo(f"etcd: {healthy}/{len(health)} members healthy, quorum "
               f"{'yes' if quorum else 'NO'}")


@lab.command("kubeconfig")
@_friendly
def lab_kubeconfig() -> None:
    """Print the lab kubeconfig's path (last line)."""
    lab_ = _lab()
    lab_.spec()
    click.echo(str(lab_.state.kubeconfig))


@lab.command("node")
@click.argument("name")
@click.argument("action", type=click.Choice(
    ["start", "stop", "restart", "reboot", "show", "boot-id"]))
@click.option("--service", help="Only this service (etcd or k3s).")
@_friendly
def lab_node(name: str, action: str, service: str | None) -> None:
    """Start, stop, restart or reboot a lab node (or one service); `show`
    prints its k3s service state as `systemctl show` does, `boot-id` its
    boot id (new on every reboot)."""
    from chaosk3s.lab.nodectl import run
    if action == "reboot" and service:
        raise click.UsageError("reboot acts on the whole node; "
                               "drop --service")
    out = run(name, action, service)
    if out:
        click.echo(out)
    else:
        _progress(f"{action} {name}{f' ({service})' if service else ''}: "
                  f"done")


if __name__ == "__main__":
    main()
