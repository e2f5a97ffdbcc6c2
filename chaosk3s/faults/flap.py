"""Flapping: a partition or degradation switched off and on by the node
itself, so the schedule goes on, and stops, without the runner.

The apply script loads the fault as usual (the "on" phase, proved by
its exit status like any apply), arms the fault's expiry timer, then
starts the flapper: a detached process (a transient systemd service
where systemd runs the node, as the timers) that sleeps through the on
phase, heals the fault (``chaosk3s_heal CHAIN keep``), sleeps through
the off phase, loads it again, ``count`` times, and ends healed. It is
recorded as ``$STATE/<chain>.flap`` (``kind id ends fault``), marked like
the timers, so every heal (``chaosk3s_heal CHAIN cancel``) stops it
before removing the fault, and the expiry timer stops it before healing
at ttl: a flapper that outlives its runner still stops at the ttl, and
the schedule is refused unless it ends by then.
"""

import shlex

from chaosk3s.errors import SpecError
from chaosk3s.faults import shell
from chaosk3s.model import FaultPlan, Flap

MIN_PHASE = 0.5  # seconds; shorter phases would be mostly tc/iptables time


def validate_flap(flap: Flap, ttl: float) -> None:
    """SpecError naming what is wrong with a schedule."""
    where = (f"flapping (period {flap.period_seconds!r}s, on "
             f"{flap.on_seconds!r}s, count {flap.count!r})")
    if isinstance(flap.count, bool) or not isinstance(flap.count, int) \
            or flap.count < 1:
        raise SpecError(f"{where}: count must be a whole number, 1 or more")
    if not MIN_PHASE <= flap.on_seconds <= flap.period_seconds - MIN_PHASE:
        raise SpecError(f"{where}: on and off must each last at least "
                        f"{MIN_PHASE}s within the period")
    if flap.period_seconds * flap.count > ttl:
        raise SpecError(f"{where}: the schedule lasts "
                        f"{flap.period_seconds * flap.count:g}s, more than "
                        f"the ttl {ttl:g}s; raise ttl or lower count")


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def flapper_lines(plan: FaultPlan, chain: str, mode: str,
                  on_lines: list[str]) -> list[str]:
    """Shell lines (after the on phase) that start plan's flapper."""
    flap = plan.flap
    if flap is None:
        return []
    on, off = _seconds(flap.on_seconds), _seconds(
        flap.period_seconds - flap.on_seconds)
    job = "\n".join([
        'PATH="$PATH:/usr/sbin:/sbin"; export PATH', 'STATE="$1"',
        shell.HEAL_FUNCTIONS, "i=1", "while :; do", f"  sleep {on}",
        f"  chaosk3s_heal {chain} keep >/dev/null",
        f'  [ "$i" -ge {flap.count} ] && break', f"  sleep {off}",
        *on_lines, "  i=$((i + 1))", "done", f'rm -f "$STATE/{chain}.flap"'])
    unit = "chaosk3s-flap-" + chain.split("-", 1)[1]
    ends = int(flap.period_seconds * flap.count) + 1
    return [
        f"flapjob={shlex.quote(job)}",
        f"ends=$(( $(date +%s) + {ends} ))",
        f"if [ {mode} = auto ] && [ -d /run/systemd/system ] && "
        "command -v systemd-run >/dev/null 2>&1; then",
        f"  systemd-run --quiet --collect --unit={unit} /bin/sh -c "
        '"$flapjob" sh "$STATE" || { chaosk3s_heal ' + chain +
        " cancel; exit 1; }",
        f'  echo "systemd {unit} $ends {plan.run_id}" > '
        f'"$STATE/{chain}.flap"',
        "else",
        f'  setsid nohup /bin/sh -c "{shell.TIMER_MARK}{chain}; '
        '$flapjob" sh "$STATE" </dev/null >/dev/null 2>&1 &',
        f'  echo "pid $! $ends {plan.run_id}" > "$STATE/{chain}.flap"',
        "fi"]
