"""`chaosk3s lab ...`: the embedded lab, by name.

Every command takes ``--name N`` (default ``$CHAOSK3S_LAB_NAME``, else
``default``): labs of different names run side by side, each with its
own namespaces, bridge, subnet and state (chaosk3s.namedlabs). A bad
name is refused before anything is touched. The lab itself is imported
by these commands only: the extension alone imports nothing of it.
"""

import dataclasses
import json
import time

import click

from chaosk3s.clitools import friendly
from chaosk3s.errors import SpecError
from chaosk3s.namedlabs import DEFAULT, ENV, check_lab_name

_friendly = friendly()


def _progress(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


def _checked_name(_ctx, _param, value: str) -> str:
    try:
        return check_lab_name(value)
    except SpecError as exc:
        raise click.BadParameter(str(exc)) from None


NAME = click.option(
    "--name", "lab_name", envvar=ENV, default=DEFAULT, show_default=True,
    callback=_checked_name,
    help=f"The lab's name (or ${ENV}): 1-8 lower-case letters or digits, "
    f"starting with a letter. Labs of different names run side by side.")


def _lab(name: str):
    """The lab of that name (imported here: the lab is optional)."""
    from chaosk3s.lab.cluster import Lab
    from chaosk3s.lab.state import LabState
    return Lab(LabState(name=name))


def _named(name: str) -> str:
    return "" if name == DEFAULT else f" --name {name}"


@click.group()
def lab() -> None:
    """The embedded lab: an emulated split-role K3s cluster."""


@lab.command("up")
@NAME
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
              "and every node get an address in fd13:11::/64 (a named "
              "lab: its own /64), or the spec's subnet6, and nodes report "
              "both.")
@_friendly
def lab_up(lab_name: str, spec_path: str | None, k3s_version: str | None,
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
    lab_ = _lab(lab_name)
    started = time.monotonic()
    spec = lab_.up(spec, progress=_progress)
    _progress(f"lab {lab_name} up in {time.monotonic() - started:.1f}s: "
              f"{len(spec.nodes)} nodes, K3s {spec.release.version} "
              f"({spec.release.family}), subnet {spec.subnet}")
    named = _named(lab_name)
    click.echo(f"state:      {lab_.state.root}")
    click.echo(f"status:     chaosk3s lab status{named}")
    click.echo(f"kubeconfig: export KUBECONFIG=$(chaosk3s lab kubeconfig"
               f"{named} | tail -n1)")
    click.echo(f"remove it:  chaosk3s lab down{named}")


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
@NAME
@click.option("--all", "every", is_flag=True,
              help="Every lab on this machine, whatever its name (those "
              "`chaosk3s lab list` shows).")
@_friendly
def lab_down(lab_name: str, every: bool) -> None:
    """Remove every process, namespace and link the lab made (and
    nothing of any other lab)."""
    if not every:
        _lab(lab_name).down(progress=_progress)
        return
    from chaosk3s.lab.labs import down_all
    removed = down_all(progress=_progress)
    for name in removed:
        _progress(f"lab {name}: down")
    _progress(f"{len(removed)} lab(s) taken down")


@lab.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object instead of lines.")
@_friendly
def lab_list(as_json: bool) -> None:
    """Every lab on this machine: recorded in the state directory, or
    with namespaces or links of its name (`unrecorded`: another state
    directory's, or left over; `chaosk3s lab down --name N` removes
    it)."""
    from chaosk3s.lab.labs import list_labs
    from chaosk3s.lab.state import base_dir
    rows = list_labs()
    if as_json:
        click.echo(json.dumps({"state_dir": str(base_dir()), "labs": rows},
                              indent=2))
        return
    if not rows:
        click.echo("no lab on this machine")
        return
    click.echo(f"{'name':<9} {'phase':<11} {'release':<22} {'subnet':<16} "
               f"{'nodes':>5} {'netns':>5}  state")
    for row in rows:
        click.echo(
            f"{row['name']:<9} {row['phase']:<11} {row['release'] or '-':<22}"
            f" {row['subnet'] or '-':<16} {row['nodes'] or '-':>5} "
            f"{len(row['namespaces']):>5}  {row['state']}")


@lab.command("status")
@NAME
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object instead of lines.")
@_friendly
def lab_status(lab_name: str, as_json: bool) -> None:
    """One line per node: name, role, address, join server, services."""
    lab_ = _lab(lab_name)
    spec = lab_.spec()
    rows = lab_.status()
    health = [row["services"]["etcd-health"] for row in rows
              if "etcd-health" in row["services"]]
    healthy = health.count("healthy")
    quorum = healthy > len(health) // 2
    if as_json:
        click.echo(json.dumps({
            "name": lab_name, "release": spec.release.version,
            "family": spec.release.family, "subnet": str(spec.subnet),
            "bridge": lab_.names.bridge, "state": str(lab_.state.root),
            "nodes": [{**row, "join": None if row["join"] == "-" else
                        row["join"]} for row in rows],
            "etcd": {"members": len(health),
                     "healthy": healthy, "quorum": quorum}},
            indent=2))
        return
    click.echo(f"lab {lab_name}: K3s {spec.release.version} "
               f"({spec.release.family}), subnet {spec.subnet}, state "
               f"{lab_.state.root}")
    for row in rows:
        services = " ".join(f"{k}={v}" for k, v in row["services"].items())
        click.echo(f"{row['name']:<16} {row['role']:<14} "
                   f"{row['address']:<15} join={row['join']:<14} "
                   f"k3s={row['k3s_version']} {services}")
    click.echo(f"etcd: {healthy}/{len(health)} members healthy, quorum "
               f"{'yes' if quorum else 'NO'}")


@lab.command("kubeconfig")
@NAME
@_friendly
def lab_kubeconfig(lab_name: str) -> None:
    """Print the lab kubeconfig's path (last line)."""
    lab_ = _lab(lab_name)
    lab_.spec()
    click.echo(str(lab_.state.kubeconfig))


@lab.command("node")
@NAME
@click.argument("name")
@click.argument("action", type=click.Choice(
    ["start", "stop", "restart", "reboot", "show", "boot-id", "upgrade",
     "version"]))
@click.option("--service", help="Only this service (etcd or k3s).")
@click.option("--k3s-version", default="",
              help="upgrade: the release to switch the node to.")
@_friendly
def lab_node(lab_name: str, name: str, action: str,
             service: str | None, k3s_version: str) -> None:
    """Start, stop, restart or reboot a lab node (or one service); `show`
    prints its k3s service state as `systemctl show` does, `boot-id` its
    boot id (new on every reboot), `version` its K3s release; `upgrade
    --k3s-version V` stops its K3s, switches it to release V and starts
    it again (a downgrade or a release the lab does not model is
    refused, with nothing changed)."""
    from chaosk3s.lab.nodectl import run
    from chaosk3s.lab.state import LabState
    if action == "reboot" and service:
        raise click.UsageError("reboot acts on the whole node; "
                               "drop --service")
    if k3s_version and action != "upgrade":
        raise click.UsageError("--k3s-version goes with upgrade only")
    out = run(name, action, service, state=LabState(name=lab_name),
              k3s_version=k3s_version)
    if out:
        click.echo(out)
    else:
        _progress(f"{action} {name}{f' ({service})' if service else ''}: "
                  f"done")
