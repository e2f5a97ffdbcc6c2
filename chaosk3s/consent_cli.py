"""`chaosk3s consent` and `chaosk3s abort`: the cluster's say, set from
the command line (see chaosk3s.consent)."""

import os

import click

from chaosk3s import consent
from chaosk3s.clitools import friendly
from chaosk3s.inventory import Inventory, load_target
from chaosk3s.kube import Kube

_friendly = friendly()
_TARGET = click.option(
    "--target", default=None,
    help="`lab` (default, or $CHAOSK3S_TARGET) or an inventory YAML.")
_BY = click.option("--by", default=None,
                   help="Who does it, as recorded (default: user@host).")


def _open(target: str | None) -> tuple[Inventory, Kube]:
    inventory = load_target(target or os.environ.get("CHAOSK3S_TARGET")
                            or "lab")
    return inventory, Kube(inventory.kubeconfig, list(inventory.contexts))


@click.command("consent")
@_TARGET
@_BY
@click.option("--withdraw", is_flag=True,
              help="Withdraw the consent: running chaosk3s runs heal and "
                   "stop, new ones are refused.")
@click.option("--status", is_flag=True,
              help="Show the consent and whether a run would be allowed "
                   "(exit 1 if not); change nothing.")
@_friendly
def consent_command(target: str | None, by: str | None, withdraw: bool,
                    status: bool) -> None:
    """Let the cluster of an inventory consent to chaos from chaosk3s
    (run it as the cluster's admin): writes the ConfigMap
    kube-system/chaosk3s-consent naming the inventory's cluster and
    prints the cluster_uid the inventory must carry."""
    inventory, kube = _open(target)
    if status:
        _status(inventory, kube)
    elif withdraw:
        gone = consent.withdraw(kube)
        click.echo(f"cluster {inventory.cluster!r}: consent "
                   f"{'withdrawn' if gone else 'was not given'}; chaosk3s "
                   f"runs against it are refused, running ones stop")
    else:
        _grant(inventory, kube, by)


def _grant(inventory: Inventory, kube: Kube, by: str | None) -> None:
    uid = consent.cluster_uid(kube)
    consent.require_uid_matches(inventory, uid)
    given = consent.grant(kube, inventory.cluster, by)
    click.echo(f"cluster {given.cluster!r} consents to chaos from chaosk3s "
               f"({consent.NAMESPACE}/{consent.NAME}, granted by "
               f"{given.granted_by} at {given.granted_at})")
    if inventory.cluster_uid == uid:
        click.echo(f"inventory {inventory.source} already names it "
                   f"(cluster_uid: {uid})")
    else:
        click.echo(f"add to inventory {inventory.source}:\n"
                   f"cluster_uid: {uid}")
    if given.abort is not None:
        click.echo(f"note: its abort switch is set "
                   f"({consent.describe_abort(given.abort)}); runs stay "
                   f"refused until `chaosk3s abort --clear`", err=True)


def _status(inventory: Inventory, kube: Kube) -> None:
    given = consent.read_consent(kube)
    if given is not None:
        click.echo(f"consent: cluster {given.cluster!r}, kube-system UID "
                   f"{given.uid}, granted by {given.granted_by} at "
                   f"{given.granted_at}")
        click.echo("abort switch: " + (consent.describe_abort(given.abort)
                                       if given.abort else "not set"))
    consent.check(inventory, kube)  # NotConsented: why a run is refused
    click.echo(f"a run with inventory {inventory.source} is allowed")


@click.command("abort")
@_TARGET
@_BY
@click.option("--reason", default="", help="Why, as recorded in every "
                                           "aborted run's journal.")
@click.option("--clear", is_flag=True,
              help="Clear the switch: runs are allowed again.")
@_friendly
def abort_command(target: str | None, by: str | None, reason: str,
                  clear: bool) -> None:
    """Set the cluster's abort switch: every chaosk3s run against it heals
    what it injected and stops within seconds (their journals say who
    and why), and no run starts until it is cleared."""
    inventory, kube = _open(target)
    if clear:
        was = consent.clear_abort(kube)
        click.echo(f"cluster {inventory.cluster!r}: abort switch "
                   f"{'cleared' if was else 'was not set'}")
        return
    switch = consent.set_abort(kube, by, reason)
    click.echo(f"cluster {inventory.cluster!r}: abort switch set "
               f"({consent.describe_abort(switch)}); running chaosk3s runs "
               f"heal and stop, new ones are refused until `chaosk3s abort "
               f"--clear`")
