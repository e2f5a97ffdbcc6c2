"""The lab's node CLI: what `systemctl` and `/proc` are on a real node.

`python -m chaosk3s.lab.nodectl NODE ACTION` starts, stops, restarts or
reboots a lab node, and reads back the evidence the extension's actions
check their effect with, in the forms a real node prints them:

- ``show``: ``MainPID=``, ``ActiveState=`` and
  ``ActiveEnterTimestampMonotonic=`` lines for the node's k3s service, as
  ``systemctl show -p MainPID,ActiveState,ActiveEnterTimestampMonotonic
  k3s`` prints them (MainPID 0 and ActiveState inactive when stopped).
- ``boot-id``: the node's emulated boot id, a UUID that changes on each
  reboot, as ``/proc/sys/kernel/random/boot_id`` does.
- ``logs --since @SECONDS --until @SECONDS``: the node's k3s and etcd
  log lines written in that window, as ``journalctl -u k3s --since
  --until`` prints them (chaosk3s.lab.nodelogs).
- ``upgrade --k3s-version V``: the node's K3s stopped, switched to
  release V and started again (chaosk3s.lab.upgrade), as an upgrade
  with the install script does; ``version``: the node's release, as
  ``k3s --version`` prints it (with the lab's family).

The lab inventory's node commands call this module (it imports only the
lab, so each call costs a fraction of the full `chaosk3s` command); the
user-facing `chaosk3s lab node` runs the same functions.
"""

import argparse
import os
import sys
from pathlib import Path

from chaosk3s.errors import ChaosK3sError
from chaosk3s.lab import procs, upgrade
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.nodelogs import since_epoch, window
from chaosk3s.lab.state import LabState
from chaosk3s.namedlabs import DEFAULT

ACTIONS = ("start", "stop", "restart", "reboot", "show", "boot-id",
           "logs", "upgrade", "version")
_TICKS = os.sysconf("SC_CLK_TCK")


def show(lab: Lab, name: str) -> str:
    """The k3s service's state as `systemctl show` prints it."""
    service = next(s for s in lab.node_services(name, None)
                   if s.name == "k3s")
    pid = procs.pid_of(service)
    ticks = procs.start_ticks(pid) if pid else None
    since = ticks * 1_000_000 // _TICKS if ticks else 0
    return "\n".join([f"MainPID={pid or 0}",
                      f"ActiveState={'active' if pid else 'inactive'}",
                      f"ActiveEnterTimestampMonotonic={since}"])


def boot_id(lab: Lab, name: str) -> str:
    lab.spec().node(name)  # an unknown node is an error, not an empty id
    return lab.boot_id(name)


def logs(lab: Lab, name: str, since: str, until: str) -> str:
    lab.spec().node(name)  # an unknown node is an error, not no lines
    try:
        start, end = since_epoch(since), since_epoch(until)
    except (ValueError, OverflowError) as exc:
        raise ChaosK3sError(f"logs: --since and --until take @SECONDS "
                            f"since the epoch ({exc})") from exc
    return "\n".join(window(lab.state.node_dir(name) / "logs", name,
                            start, end))


def run(name: str, action: str, service: str | None = None,
        since: str = "@0", until: str = "@0",
        state: LabState | None = None, k3s_version: str = "") -> str:
    """Do action on node name of the lab of state; return what it
    prints."""
    lab = Lab(state)
    if action in ("upgrade", "version"):
        return _release_action(lab, name, action, service, k3s_version)
    if action == "logs":
        return logs(lab, name, since, until)
    if action == "show":
        return show(lab, name)
    if action == "boot-id":
        return boot_id(lab, name)
    if action == "reboot":
        if service:
            raise ChaosK3sError("reboot acts on the whole node; drop "
                                "--service")
        lab.reboot_node(name)
    else:
        getattr(lab, f"{action}_node")(name, service)
    return ""


def _release_action(lab: Lab, name: str, action: str,
                    service: str | None, k3s_version: str) -> str:
    if service:
        raise ChaosK3sError(f"{action} concerns the node's K3s as a whole; "
                            f"drop --service")
    if action == "version":
        return upgrade.node_version(lab, name)
    if not k3s_version:
        raise ChaosK3sError("upgrade needs --k3s-version V (`chaosk3s lab "
                            "releases` lists the modelled releases)")
    return upgrade.upgrade_node(lab, name, k3s_version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaosk3s.lab.nodectl")
    parser.add_argument("node")
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--service", help="only this service (etcd, k3s)")
    parser.add_argument("--since", default="@0", help="logs: from @SECONDS")
    parser.add_argument("--until", default="@0", help="logs: to @SECONDS")
    parser.add_argument("--k3s-version", default="",
                        help="upgrade: the release to switch the node to")
    parser.add_argument("--lab", default=DEFAULT,
                        help="the lab's name (not read from the "
                        "environment: the inventory says which lab)")
    parser.add_argument("--state-dir", type=Path,
                        help="the lab's own state dir (default: the "
                        "lab's under $CHAOSK3S_STATE_DIR)")
    args = parser.parse_args(argv)
    try:
        out = run(args.node, args.action, args.service, args.since,
                  args.until, LabState(args.state_dir, args.lab),
                  args.k3s_version)
    except ChaosK3sError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
