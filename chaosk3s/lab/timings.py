"""Every K3s/Kubernetes period the lab uses, in two profiles.

- ``k3s``: the real values, each read in K3s, remotedialer or Kubernetes
  (docs/k3s-behaviour.md, "Timings", cites each).
- ``lab`` (the default): compressed so a run takes seconds, keeping every
  ordering that decides an experiment's outcome (docs/k3s-behaviour.md,
  "Orderings"; tests/unit/test_timings.py checks them).

A spec chooses with ``timings: k3s``, or a mapping with an optional
``profile:`` plus per-timing overrides; an experiment with ``lab_timings``.
"""

from dataclasses import asdict, dataclass, fields, replace

from chaosk3s.errors import SpecError

PROFILES = ("lab", "k3s")
NO_TIMEOUT = 0.0  # a dial bounded only by the kernel's SYN retries


@dataclass(frozen=True)
class Timings:
    """Seconds. Defaults are the ``lab`` profile; ``K3S`` has the real
    values (the comment on each names it)."""

    profile: str = "lab"
    node_status_update: float = 2.0  # kubelet status and lease renew: 10
    status_update_timeout: float = 4.0  # kubelet heartbeat client: 10
    node_monitor_grace: float = 10.0  # controller-manager: 40 (50 in 1.32+)
    node_monitor_period: float = 1.0  # controller-manager: 5
    endpoint_ttl: float = 5.0  # apiserver endpoint lease TTL: 15
    endpoint_reconcile: float = 2.0  # apiserver endpoint refresh: 10
    endpoint_debounce: float = 1.0  # agent tunnel watch debounce: 1
    apiservers_poll: float = 1.0  # /v1-k3s/apiservers poll at start: 5
    lb_health_interval: float = 1.0  # load balancer health loop: 1
    lb_dial_timeout: float = 10.0  # fix1+ dial timeout: 10
    tunnel_ping_interval: float = 1.0  # remotedialer ping: 5
    tunnel_dead_after: float = 6.0  # remotedialer read deadline: 60
    tunnel_dial_timeout: float = 2.0  # K3s's tunnel dialer: none (0)
    tunnel_reconnect: float = 1.0  # remotedialer reconnect sleep: 1
    etcd_lb_health_interval: float = 1.0  # etcd proxy /ping: 5 (+jitter)
    etcd_lb_health_timeout: float = 1.0  # etcd proxy /ping timeout: 1
    relist_backoff_max: float = 8.0  # client-go re-list backoff cap: 30
    reboot_delay: float = 2.0  # how long a rebooted node stays down: 30
    restart_delay: float = 2.0  # systemd RestartSec of the k3s unit: 5
    startup: float = 3.0  # k3s start until it listens (not first boot): 15

    @property
    def values(self) -> dict[str, float]:
        """Every timing by name (the profile left out)."""
        return {k: v for k, v in asdict(self).items() if k != "profile"}

    @classmethod
    def from_spec(cls, raw: object, minor: int = 28) -> "Timings":
        """``None``, a profile name, or a mapping (``profile`` plus
        overrides); minor is the release's Kubernetes minor."""
        if raw is None:
            raw = {}
        if isinstance(raw, str):
            raw = {"profile": raw}
        if not isinstance(raw, dict):
            raise SpecError(
                f"timings must be a profile ({' or '.join(PROFILES)}) or a "
                f"mapping of name: seconds, not {raw!r}")
        overrides = dict(raw)
        profile = overrides.pop("profile", "lab")
        base = profile_timings(profile, minor)
        _check(overrides)
        return replace(base, **{k: float(v) for k, v in overrides.items()})


def profile_timings(profile: object, minor: int = 28) -> Timings:
    """The named profile's timings for a release of this minor."""
    if profile == "lab":
        return Timings()
    if profile == "k3s":
        # kubernetes PR #126287: the grace period became 50 s in 1.32.
        grace = 50.0 if minor >= 32 else 40.0
        return replace(K3S, node_monitor_grace=grace)
    raise SpecError(f"unknown timings profile {profile!r}; profiles: "
                    f"{', '.join(PROFILES)}")


def _check(overrides: dict) -> None:
    known = {f.name for f in fields(Timings)} - {"profile"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SpecError(
            f"unknown timing(s) {', '.join(unknown)}; known timings: "
            f"{', '.join(sorted(known))}")
    for key, value in overrides.items():
        zero_ok = key == "tunnel_dial_timeout"  # 0 = no timeout
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or value < 0 or (value == 0 and not zero_ok):
            raise SpecError(
                f"timing {key} must be a positive number of seconds, not "
                f"{value!r}")


K3S = Timings(
    profile="k3s", node_status_update=10.0, status_update_timeout=10.0,
    node_monitor_grace=40.0, node_monitor_period=5.0, endpoint_ttl=15.0,
    endpoint_reconcile=10.0, endpoint_debounce=1.0, apiservers_poll=5.0,
    lb_health_interval=1.0, lb_dial_timeout=10.0, tunnel_ping_interval=5.0,
    tunnel_dead_after=60.0, tunnel_dial_timeout=NO_TIMEOUT,
    tunnel_reconnect=1.0, etcd_lb_health_interval=5.0,
    etcd_lb_health_timeout=1.0, relist_backoff_max=30.0, reboot_delay=30.0,
    restart_delay=5.0, startup=15.0)
