"""The lab as a whole: bring it up, take it down, drive its nodes."""

import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable

from chaosk3s.errors import EnvironmentProblem, LabStateError, SpecError
from chaosk3s.lab import etcd, hostnet, operator, procs, ssh
from chaosk3s.lab.access import (
    opt_in,
    wait_all_ready,
    wait_registered,
    wait_serving,
    wait_supervisor,
    write_access_files,
)
from chaosk3s.lab.placement import place, placement_lock
from chaosk3s.lab.polling import poll_until
from chaosk3s.lab.shell import require
from chaosk3s.lab.spec import NODE_NAME, LabSpec, NodeSpec
from chaosk3s.lab.state import LabState

SERVICES = ("sshd", "etcd", "k3s", "virtual")
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


class Lab:
    """One lab, by its name (its state says which: chaosk3s.lab.state)."""

    def __init__(self, state: LabState | None = None):
        self.state = state or LabState()
        self.names = self.state.names

    # -- services ---------------------------------------------------------
    def services(self, spec: LabSpec, node: NodeSpec) -> list[procs.Service]:
        """The node's services in start order (sshd, etcd, k3s)."""
        wanted = {"sshd": spec.ssh, "etcd": node.runs_etcd, "k3s": True,
                  # Virtual nodes are kept by one process, on the
                  # cluster-init server (next to a local etcd member).
                  "virtual": spec.virtual_nodes > 0 and node.server is None}
        names = [s for s in SERVICES if wanted[s]]
        return [self._service(spec, node, name) for name in names]

    def _service(self, spec: LabSpec, node: NodeSpec,
                 name: str) -> procs.Service:
        if name == "sshd":
            argv = ssh.sshd_service_argv(self.ssh_layout, node.name)
        elif name == "etcd":
            members = {n.name: n.address for n in spec.nodes if n.runs_etcd}
            argv = etcd.member_argv(node.name, node.address,
                                    self.state.node_dir(node.name) / "etcd",
                                    members)
        elif name == "virtual":
            argv = [sys.executable, "-m", "chaosk3s.lab.k3s.virtual",
                    "--state-dir", str(self.state.root), "--node", node.name]
        else:
            argv = _restart_always(
                [sys.executable, "-m", "chaosk3s.lab.k3s", "--state-dir",
                 str(self.state.root), "--node", node.name],
                spec.timings.restart_delay)
        return procs.Service(
            node=node.name, name=name,
            namespace=self.names.netns(node.name), argv=tuple(argv),
            log=self.state.log(node.name, name),
            pidfile=self.state.pidfile(node.name, name))

    # -- lifecycle --------------------------------------------------------
    def up(self, spec: LabSpec, progress: Progress = _quiet,
           timeout: float = 60) -> LabSpec:
        """Create the lab; on any failure undo everything, then raise.
        Returns the spec as placed (a named lab's own subnet)."""
        started = time.monotonic()
        # Before the lock: its file is root's, and a non-root user must
        # hear what to do, not a PermissionError on /run/lock.
        check_privileges()
        # Choosing the subnet and claiming it with the bridge is one step
        # for every lab on the machine (chaosk3s.lab.placement).
        with placement_lock():
            spec = self._preflight(spec)
            self.state.save(spec, phase="creating")
            try:
                self._create_bridge(spec, progress)
            except BaseException:
                self.down()
                raise
        try:
            self._create(spec, progress, started, started + timeout)
        except BaseException:
            progress("lab up failed; removing what was created")
            self.down()
            raise
        self.state.save(spec, phase="up")
        return spec

    def _create_bridge(self, spec: LabSpec, progress: Progress) -> None:
        progress(f"creating {len(spec.nodes)} node namespaces on "
                 f"{self.names.bridge} ({spec.subnet}), lab "
                 f"{self.names.name}")
        prefix6 = spec.subnet6.split("/")[1] if spec.subnet6 else None
        hostnet.create_bridge(
            self.names, f"{spec.host_address}/{spec.prefix_length}",
            spec.subnet6 and f"{spec.host_address6}/{prefix6}")

    def _create(self, spec: LabSpec, progress: Progress, started: float,
                deadline: float) -> None:
        prefix6 = spec.subnet6.split("/")[1] if spec.subnet6 else None
        for index, node in enumerate(spec.nodes):
            hostnet.create_node_network(
                self.names, node.name, index,
                f"{node.address}/{spec.prefix_length}",
                node.address6 and f"{node.address6}/{prefix6}")
            self._boot(node.name)
        if spec.ssh:
            self._start_sshd(spec, progress, deadline)
        etcd_nodes = [n for n in spec.nodes if n.runs_etcd]
        progress(f"starting etcd on {', '.join(n.name for n in etcd_nodes)}")
        for node in etcd_nodes:
            procs.start(self._service(spec, node, "etcd"))
        self.wait_etcd_healthy(spec, deadline)
        progress(f"etcd healthy after {time.monotonic() - started:.1f}s; "
                 f"starting k3s ({spec.release.version}) on every node")
        # As operators do: the cluster-init server first, then the rest.
        first = next(n for n in spec.nodes if n.server is None)
        procs.start(self._service(spec, first, "k3s"))
        wait_supervisor(first, deadline)
        # The first API server registered before any other, so etcd-only
        # servers (whose load-balancer default becomes the first address
        # they read) always pick the same one: experiments that stop the
        # API servers in turn then mean the same thing on every run.
        api_first = next((n for n in spec.nodes if n.runs_apiserver), None)
        if api_first is not None and api_first is not first:
            procs.start(self._service(spec, api_first, "k3s"))
        if api_first is not None:
            wait_registered(api_first, deadline)
        for node in spec.nodes:
            if node not in (first, api_first):
                procs.start(self._service(spec, node, "k3s"))
        if spec.virtual_nodes:
            progress(f"registering {spec.virtual_nodes} virtual nodes")
            procs.start(self._service(spec, first, "virtual"))
        write_access_files(self.state, spec, self.ssh_layout)
        progress("waiting for every node to be Ready")
        wait_all_ready(spec, deadline, progress)
        progress(f"all {len(spec.nodes)} nodes Ready after "
                 f"{time.monotonic() - started:.1f}s")
        uid = opt_in(self.state)
        progress(f"the lab consents to chaos (kube-system/chaosk3s-consent,"
                 f" cluster UID {uid})")

    @property
    def ssh_layout(self) -> ssh.SshLayout:
        return ssh.SshLayout(self.state.root / "ssh")

    def _start_sshd(self, spec: LabSpec, progress: Progress,
                    deadline: float) -> None:
        progress("starting sshd on every node (lab up --ssh)")
        ssh.ensure_client_key(self.ssh_layout)
        if spec.ssh_sudo:
            progress(f"adding the operator account {self.names.operator} "
                     f"(passwordless sudo for sh; lab down removes it)")
            operator.add(self.names)
        for node in spec.nodes:
            ssh.prepare_node(self.ssh_layout, node.name, node.address,
                             sudo=spec.ssh_sudo)
            procs.start(self._service(spec, node, "sshd"))
        for node in spec.nodes:
            ssh.wait_listening(node.address, deadline)

    def wait_etcd_healthy(self, spec: LabSpec, deadline: float) -> None:
        members = [n for n in spec.nodes if n.runs_etcd]
        sick: list[str] = []

        def healthy() -> bool:
            sick[:] = [n.name for n in members
                       if not etcd.member_health(n.address, timeout=0.5)]
            return not sick

        poll_until(healthy, deadline, lambda: (
            f"etcd not healthy in time on {', '.join(sick)}; see "
            f"{self.state.log(sick[0], 'etcd')}"), interval=0.1)

    def _preflight(self, spec: LabSpec) -> LabSpec:
        """Refuse, before anything changes; the spec as placed."""
        etcd.check_lab_extra()
        check_privileges()
        require("ip")
        require("iptables")
        if spec.ssh:
            require("sshd")
        if spec.ssh_sudo:
            operator.check_can_add(self.names)
        self.names.veth(len(spec.nodes) - 1)  # link names must fit
        down = self.command("down")
        if self.state.exists():
            raise LabStateError(
                f"a lab{self._called} is already up (state in "
                f"{self.state.root}); run `{down}` first, or "
                f"`{self.command('status')}`")
        leftovers = (hostnet.list_lab_namespaces(self.names)
                     + hostnet.list_lab_links(self.names))
        if leftovers:
            raise LabStateError(
                f"leftovers of an earlier lab{self._called} exist "
                f"({', '.join(leftovers[:6])}); run `{down}` to remove "
                f"them")
        return place(spec, self.names)

    @property
    def _called(self) -> str:
        """" named N" in messages (nothing for the default lab)."""
        return "" if self.names.is_default else f" named {self.names.name}"

    def command(self, verb: str) -> str:
        """How a user types `chaosk3s lab VERB` for this lab."""
        named = "" if self.names.is_default else f" --name {self.names.name}"
        return f"chaosk3s lab {verb}{named}"

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Remove every process, namespace and link of the lab.

        Works from the state directory when there is one and, whatever it
        says, from the names the lab uses, so a crashed or half-made lab
        is cleaned too. Returns what was removed.
        """
        check_privileges()
        spec = self._recorded_spec()
        removed = self._stop_recorded_services(spec)
        namespaces = hostnet.list_lab_namespaces(self.names)
        nodes = {n.name for n in spec.nodes} if spec else set()
        nodes |= {ns.removeprefix(self.names.prefix) for ns in namespaces}
        pids = [pid for ns in namespaces for pid in hostnet.namespace_pids(ns)]
        procs.signal_and_wait(pids, grace=2.0)
        for namespace in namespaces:
            hostnet.delete_namespace(namespace)
        links = hostnet.list_lab_links(self.names)
        for link in sorted(links, key=lambda name: name == self.names.bridge):
            hostnet.delete_link(link)
        self._archive_logs()
        removed += namespaces + links + operator.remove(self.names)
        removed += self._remove_fault_state(nodes)
        progress(f"removed {len(namespaces)} namespaces, {len(links)} links"
                 f" and {len(pids)} stray processes")
        return removed

    def _recorded_spec(self) -> LabSpec | None:
        if not self.state.exists():
            return None
        try:
            return self.state.load()[0]
        except (SpecError, ValueError, KeyError, OSError):
            return None

    def _stop_recorded_services(self, spec: LabSpec | None) -> list[str]:
        if spec is None:
            return []
        services = [s for node in spec.nodes
                    for s in reversed(self.services(spec, node))]
        # The lab is going away: a short grace, because etcd members that
        # all stop together wait seconds for a leader transfer in vain.
        procs.stop(services, grace=0.5)
        return [f"{s.node}/{s.name}" for s in services]

    def _remove_fault_state(self, nodes: set[str]) -> list[str]:
        """The lab's node-side fault state: timers and the logs node
        actions leave (reboot-*.log, CHAOSK3S_START-*.log), which would
        pile up in /run/chaosk3s lab after lab. A named lab has a
        directory of its own; the default lab's are its nodes' own, beside
        the named labs' lab.N (node names have no dot), which stay."""
        base = self.names.fault_state_dir
        if not self.names.is_default:
            found = [base] if os.path.isdir(base) else []
        else:  # only names a spec accepts: never a path of another lab
            found = [f"{base}/{node}" for node in sorted(nodes)
                     if NODE_NAME.match(node)
                     and os.path.isdir(f"{base}/{node}")]
        for directory in found:
            shutil.rmtree(directory, ignore_errors=True)
        return found

    def _archive_logs(self) -> None:
        """Keep the last lab's logs for post-mortems; drop everything else."""
        nodes = self.state.root / "nodes"
        archive = self.state.root / "last-logs"
        if nodes.exists():
            shutil.rmtree(archive, ignore_errors=True)
            archive.mkdir(parents=True)
            for node_dir in nodes.iterdir():
                if (node_dir / "logs").exists():
                    shutil.copytree(node_dir / "logs", archive / node_dir.name)
            shutil.rmtree(nodes)
        for leftover in (self.state.record, self.state.kubeconfig,
                         self.state.inventory):
            leftover.unlink(missing_ok=True)

    # -- inspection and node control --------------------------------------
    def spec(self) -> LabSpec:
        if not self.state.exists():
            raise LabStateError(
                f"no lab{self._called} is up (no {self.state.record}); "
                f"start one with `{self.command('up')}` (`chaosk3s lab "
                f"list` lists the labs that are)")
        return self.state.load()[0]

    def status(self) -> list[dict]:
        spec = self.spec()
        rows = []
        for node in spec.nodes:
            states = {s.name: "running" if procs.pid_of(s) else "stopped"
                      for s in self.services(spec, node)}
            if node.runs_etcd:
                states["etcd-health"] = (
                    "healthy" if etcd.member_health(node.address, 0.5)
                    else "unhealthy")
            rows.append({"name": node.name, "role": node.role,
                         "address": node.address, "join": node.server or "-",
                         "k3s_version": spec.release_of(node).version,
                         "services": states})
        return rows

    def node_services(self, name: str,
                      service: str | None) -> list[procs.Service]:
        """The named service, or what `systemctl stop|start k3s` covers:
        every service but sshd (K3s embeds etcd in its process)."""
        spec = self.spec()
        node = spec.node(name)
        services = self.services(spec, node)
        if service is None:
            return [s for s in services if s.name != "sshd"]
        chosen = [s for s in services if s.name == service]
        if not chosen:
            raise SpecError(
                f"node {name} has no service {service!r}; it has "
                f"{', '.join(s.name for s in services)}")
        return chosen

    def start_node(self, name: str, service: str | None = None,
                   timeout: float = 15) -> None:
        """Start, and like systemd's Type=notify k3s unit return once k3s
        serves (its supervisor answers; on control-plane nodes the API),
        allowing timeout seconds beyond the profile's startup time."""
        for svc in self.node_services(name, service):
            procs.start(svc)
        spec = self.spec()
        node = spec.node(name)
        if node.is_server and service in (None, "k3s"):
            wait_serving(node, time.monotonic() + spec.timings.startup
                         + timeout)

    def stop_node(self, name: str, service: str | None = None) -> None:
        procs.stop(list(reversed(self.node_services(name, service))))

    def restart_node(self, name: str, service: str | None = None) -> None:
        self.stop_node(name, service)
        self.start_node(name, service)

    def reboot_node(self, name: str, delay: float | None = None) -> None:
        """Power-cycle: services stopped, rules flushed, link down, back."""
        spec = self.spec()
        everything = self.services(spec, spec.node(name))
        procs.stop(list(reversed(everything)))
        hostnet.flush_node_iptables(self.names, name)
        hostnet.set_node_link(self.names, name, up=False)
        time.sleep(spec.timings.reboot_delay if delay is None else delay)
        self._boot(name)
        hostnet.set_node_link(self.names, name, up=True)
        for service in everything:
            procs.start(service)

    def boot_id(self, name: str) -> str:
        """The node's emulated boot id (a real node's
        /proc/sys/kernel/random/boot_id): new on every (re)boot."""
        try:
            return self.state.boot_id(name).read_text().strip()
        except OSError:
            raise LabStateError(f"node {name} has no boot id (is the lab "
                                f"up?)") from None

    def _boot(self, name: str) -> None:
        path = self.state.boot_id(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{uuid.uuid4()}\n")


def _restart_always(argv: list[str], delay: float) -> list[str]:
    """Wrap a service like systemd's Restart=always: a crash-looping k3s
    (K3s #11333) keeps trying, as it does on a real node."""
    loop = ('while :; do "$@"; echo "k3s exited with status $?; restarting '
            f'in {delay:g}s"; sleep {delay:g}; done')
    return ["sh", "-c", loop, "k3s", *argv]


def check_privileges() -> None:
    """The lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for netns)."""
    if os.geteuid() != 0 or not _has_capability(12) or \
            not _has_capability(21):
        raise EnvironmentProblem(
            "the lab needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN to "
            "create network namespaces; run it as root (or with sudo)")


def _has_capability(bit: int) -> bool:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False
