"""The verdict banner: completed, deviated, failed, refused or interrupted,
and why.

Chaos Toolkit's own status is terse ("completed" even when the gate
hypothesis failed and the method never ran), so the verdict reads the
steady states, the method and the chaosk3s section to say what happened
in one sentence, plus notes a reviewer must not miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaosk3s.errors import names_a_refusal
from chaosk3s.report.svg import TimeAxis, clock
from chaosk3s.report.values import compact

if TYPE_CHECKING:  # the journal module builds verdicts: no runtime cycle
    from chaosk3s.report.journal import Activity, Journal, SteadyState

COMPLETED, DEVIATED, FAILED = "completed", "deviated", "failed"
INTERRUPTED, REFUSED = "interrupted", "refused"
_SHOWN = 160  # characters of an output quoted in the verdict
_NAMES = 20  # node names listed in one sentence, then "and N more"
_UNHEALED_NOTES = 10


@dataclass
class Verdict:
    kind: str  # completed | deviated | failed | refused | interrupted
    reason: str
    notes: list[str] = field(default_factory=list)


def _quote(value: object) -> str:
    shown = compact(value)
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "…"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES])
    return shown + (f" and {len(names) - _NAMES} more"
                    if len(names) > _NAMES else "")


def _culprit(state: SteadyState | None) -> Activity | None:
    """The probe that broke a steady state: hypotheses stop at it."""
    if state is None:
        return None
    for probe in state.probes:
        if probe.error or probe.tolerance_met is False:
            return probe
    return state.probes[-1] if state.probes and state.met is False else None


def _probe_says(probe: Activity | None) -> str:
    if probe is None:
        return ""
    if probe.error:
        return f": probe '{probe.name}' raised {probe.error}"
    tolerance = f" (tolerance {probe.tolerance})" if probe.tolerance else ""
    return (f": probe '{probe.name}' returned {_quote(probe.output)}"
            f"{tolerance}")


def _during_note(journal: Journal) -> str | None:
    missed = sum(1 for state in journal.during if state.met is False)
    if not missed:
        return None
    return (f"The steady state was not met in {missed} of "
            f"{len(journal.during)} checks during the method.")


def _refused(journal: Journal) -> list[dict]:
    """The failed activities that refused what they were asked."""
    return [f for f in journal.failed_activities
            if names_a_refusal(f["error"])]


def _raised(journal: Journal) -> str:
    first = (_refused(journal) or journal.failed_activities)[0]
    more = len(journal.failed_activities) - 1
    return (f"The run failed: {first['phase']} activity '{first['name']}' "
            f"raised {first['error']}"
            + (f" (and {more} more, below)" if more else "")
            + "; the experiment did not run as written.")


def _reason(journal: Journal) -> tuple[str, str]:
    if journal.refused:
        return REFUSED, ("The chaosk3s control refused the run before the "
                         "steady state was checked: nothing was injected "
                         "or started. What it refused is listed below.")
    if journal.aborted:
        switch = journal.aborted
        return INTERRUPTED, (
            f"The cluster's abort switch stopped the run (set by "
            f"{switch['by'] or 'unknown'} at {switch['at'] or '?'}"
            f"{': ' + switch['reason'] if switch['reason'] else ''}); the "
            f"control stopped injecting, healed (a fault with no end is "
            f"listed below) and ended the run.")
    if journal.partial:
        return INTERRUPTED, (
            "The journal is partial: the run stopped before it finished "
            "(no end time or status). Everything it recorded is below.")
    if journal.status == "interrupted":
        return INTERRUPTED, ("The run was interrupted (Ctrl-C, SIGTERM or "
                             "a safeguard) before it could finish.")
    if journal.status == "aborted":
        return INTERRUPTED, ("The run was aborted by a control or by the "
                             "steady-state check during the method.")
    if journal.before and journal.before.met is False:
        return FAILED, ("The steady state was not met before the method"
                        f"{_probe_says(_culprit(journal.before))}; the "
                        "method did not run.")
    if journal.failed_activities and (not journal.deviated
                                      or _refused(journal)):
        return FAILED, _raised(journal)
    if journal.status == "failed":
        culprit = _culprit(journal.after) or next(
            (c for c in map(_culprit, journal.during) if c), None)
        return FAILED, ("The run failed"
                        f"{_probe_says(culprit) or ' (an activity raised)'}"
                        ".")
    if journal.deviated:
        return DEVIATED, ("The steady state deviated after the method"
                          f"{_probe_says(_culprit(journal.after))}.")
    if journal.status not in ("", COMPLETED):
        return FAILED, f"Chaos Toolkit ended with status {journal.status!r}."
    return COMPLETED, ("The steady state held before and after the "
                       "method.")


def _notes(journal: Journal, reason: str) -> list[str]:
    if journal.refused:  # one line per thing refused
        return journal.refused.splitlines()
    notes = [f"{f['phase'].capitalize()} activity '{f['name']}' raised "
             f"{f['error']}." for f in journal.failed_activities
             if f"activity '{f['name']}' raised" not in reason]
    during = _during_note(journal)
    if during:
        notes.append(during)
    failed = [a for a in journal.method if a.failed]
    if failed and not journal.failed_activities:
        notes.append(f"{len(failed)} of {len(journal.method)} method "
                     "activities failed; Chaos Toolkit carries on after a "
                     "failed activity.")
    if journal.k3s:
        lost = journal.k3s.not_recovered
        if lost:
            risky = [n.name for n in lost if n.at_risk]
            notes.append(
                "Never Ready again: " + _names([n.name for n in lost])
                + (f" (at risk, joined through an etcd-only server: "
                   f"{_names(risky)})" if risky else "") + ".")
        if journal.k3s.final_source == "watch" and journal.k3s.final_error:
            notes.append("Nodes judged on the readiness watch's last view, "
                         "not a fresh API read: "
                         f"{journal.k3s.final_error}.")
        held = journal.k3s.held_down
        if held:
            notes.append(
                "Held down by the run's own fault at the steady-state "
                "check after the method, so not judged recovered or not: "
                + _names([f"{n.name} ({n.held_down})" for n in held])
                + ".")
        unhealed = journal.k3s.unhealed
        if len(unhealed) > _UNHEALED_NOTES:
            notes.append(f"{len(unhealed)} faults have no end: the "
                         f"journal never saw them healed.")
            unhealed = []
        for fault in unhealed:
            notes.append(f"Fault {fault.id} ({fault.description or fault.kind})"
                         " has no end: the journal never saw it healed.")
    if not journal.rollbacks and journal.status in ("failed", "interrupted",
                                                    "aborted"):
        notes.append(f"No rollbacks ran (strategy "
                     f"{journal.rollback_strategy}).")
    return notes


def _outages_said(journal: Journal) -> str:
    """The run's outage figures, each under its own name: the outage
    (NotReady to Ready) and the time from a heal to Ready."""
    k3s = journal.k3s
    if k3s is None or not any(n.outages for n in k3s.nodes):
        return ""
    down = k3s.down_at_end
    parts = [f"{len(down)} node(s) were not Ready again by the end of the "
             f"run ({_names([n.name for n in down])})" if down else
             "Every node that went NotReady was Ready again"]
    if k3s.longest:
        node, outage = k3s.longest
        axis = TimeAxis(*journal.span)
        parts.append(
            f"the longest outage lasted {outage.seconds:.1f} s ({node.name}:"
            f" NotReady at {clock(axis.offset(outage.not_ready_at))}, "
            f"Ready at {clock(axis.offset(outage.ready_at))})")
    after = k3s.slowest_after_heal
    if after is not None:
        parts.append(f"the slowest return to Ready took {after:.1f} s "
                     "after its fault was healed" if after >= 0 else
                     "every node was Ready again before its fault was "
                     "healed")
    return " " + "; ".join(parts) + "."


def judge(journal: Journal) -> Verdict:
    kind, reason = _reason(journal)
    if kind == COMPLETED:
        reason += _outages_said(journal)
    return Verdict(kind, reason, _notes(journal, reason))
