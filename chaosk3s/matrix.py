"""`chaosk3s matrix`: one experiment (or several) across K3s releases,
each run on a lab of its own; what was asked and what came of it.

This module is pure: the releases and expectations as the caller typed
them, checked against the lab's release table before anything starts;
the verdict of each run read from its journal exactly as its report
reads it (chaosk3s.report); the exit code. Running the children is
chaosk3s.matrix_run's, writing the outputs chaosk3s.matrix_output's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chaosk3s.errors import MatrixError
from chaosk3s.gameday.runner import classify

if TYPE_CHECKING:  # the lab is an extra: imported where it is used
    from chaosk3s.lab.releases import Release

# A run's verdict: the report's (completed, deviated, failed, refused,
# interrupted), "aborted" as the game day says it, "error" when the run
# left no journal or ran on another release than asked, "not run" when
# the matrix was stopped before it began.
VERDICTS = ("completed", "deviated", "failed", "refused", "interrupted",
            "aborted", "error", "not run")
# The verdicts that speak of the release's behaviour: a journal that
# gives one must say the run used that release.
JUDGED = ("completed", "deviated", "failed")
# What the matrix sets on every run: the caller may not.
RESERVED_VARIABLES = ("lab_name", "lab_k3s_version", "target")

EXIT_MATCHED, EXIT_MISMATCH, EXIT_STOPPED = 0, 1, 3


@dataclass
class RunResult:
    """One experiment on one release: where it ran and what came of it."""

    experiment: Path
    release: Release
    lab: str  # the lab's name
    directory: Path  # the journal, its report and logs
    expected: str = "completed"
    verdict: str = "not run"
    reason: str = ""
    seconds: float | None = None  # wall time of its `chaos run`
    returncode: int | None = None
    not_recovered: list[str] = field(default_factory=list)
    # not Ready at the check after the method because a fault of the run
    # still held them down there (a stop its rollback undoes): not judged
    held_down: list[str] = field(default_factory=list)
    longest_outage: float | None = None  # NotReady to Ready, ended ones
    slowest_after_heal: float | None = None  # a heal to Ready
    nodes: int | None = None  # nodes the journal's section lists
    # where recovered was judged: "api" (a fresh read at the check after
    # the method) or "watch" (the readiness watch's view: the API did not
    # answer in time); "" in journals older than the distinction
    final_source: str = ""
    lab_release: str | None = None  # the release the journal says ran
    # What the matrix sets on the run (--var): target, release, lab name.
    variables: dict[str, str] = field(default_factory=dict)
    # The caller's --var-for for this release that the experiment
    # declares: {key: the assignment as typed, KEY[:TYPE]=VALUE}.
    release_variables: dict[str, str] = field(default_factory=dict)

    @property
    def journal(self) -> Path:
        return self.directory / "journal.json"

    @property
    def report(self) -> Path:
        return self.directory / "journal.html"

    @property
    def log(self) -> Path:
        return self.directory / "journal.log"

    @property
    def matched(self) -> bool:
        return self.verdict == self.expected


def parse_releases(text: str) -> list[Release]:
    """The releases of `--releases R1,R2,...`, each in the lab's release
    table; MatrixError naming every one that is not, or is repeated."""
    from chaosk3s.lab.releases import parse_release
    names = [part.strip() for part in str(text).split(",")]
    if not any(names):
        raise MatrixError("--releases is empty: give one or more K3s "
                          "releases, comma-separated (`chaosk3s lab "
                          "releases` lists them)")
    problems, releases = [], []
    for name in names:
        if not name:
            problems.append("--releases has an empty entry (two commas "
                            "in a row, or one at an end)")
        elif name in (r.version for r in releases):
            problems.append(f"--releases names {name} twice")
        else:
            try:
                releases.append(parse_release(name))
            except ValueError as exc:
                problems.append(f"--releases {name}: {exc}")
    if problems:
        raise MatrixError("\n".join(problems))
    return releases


def parse_expectations(values: tuple[str, ...] | list[str],
                       releases: list[Release]) -> dict[str, str]:
    """`--expect R=verdict,...` (repeatable) as {release or family:
    verdict}. A key is one of the matrix's releases or a behaviour
    family (buggy, fix1, rework) one of them belongs to."""
    versions = [r.version for r in releases]
    families = sorted({r.family for r in releases})
    found: dict[str, str] = {}
    problems = []
    for value in values:
        for item in (p.strip() for p in str(value).split(",")):
            key, sep, verdict = (s.strip() for s in item.partition("="))
            if not sep or not key or not verdict:
                problems.append(f"--expect {item!r}: expected "
                                f"RELEASE=VERDICT, e.g. "
                                f"{versions[0]}=completed")
            elif key not in versions and key not in families:
                problems.append(
                    f"--expect {key}: not one of the matrix's releases "
                    f"({', '.join(versions)}) nor a family of them "
                    f"({', '.join(families)})")
            elif verdict not in VERDICTS[:-1]:
                problems.append(f"--expect {key}={verdict}: unknown "
                                f"verdict; one of "
                                f"{', '.join(VERDICTS[:-1])}")
            elif found.get(key, verdict) != verdict:
                problems.append(f"--expect {key}: given twice, as "
                                f"{found[key]} and {verdict}")
            else:
                found[key] = verdict
    if problems:
        raise MatrixError("\n".join(problems))
    return found


def parse_release_variables(pairs: tuple[tuple[str, str], ...],
                            releases: list[Release],
                            key_of: Callable[[str], str]
                            ) -> dict[str, dict[str, str]]:
    """`--var-for RELEASE KEY[:TYPE]=VALUE` (repeatable) as {release:
    {key: the assignment as typed}}: a variable whose value must suit
    each release, such as the version a rolling upgrade goes to. key_of
    is Chaos Toolkit's own --var parsing (ValueError for a bad value)."""
    versions = [r.version for r in releases]
    found: dict[str, dict[str, str]] = {}
    problems = []
    for release, assignment in pairs:
        name, sep, _value = str(assignment).partition("=")
        if release not in versions:
            problems.append(f"--var-for {release}: not one of the "
                            f"matrix's releases ({', '.join(versions)})")
        elif not sep or not name.strip():
            problems.append(f"--var-for {release} {assignment!r}: "
                            f"expected KEY[:TYPE]=VALUE, e.g. "
                            f"target_version=v1.28.15+k3s-2d0661e3")
        else:
            try:
                key = key_of(assignment)
            except ValueError as exc:
                problems.append(f"--var-for {release} {assignment}: {exc}")
                continue
            if key in found.setdefault(release, {}):
                problems.append(f"--var-for {release}: {key} given twice")
            found[release][key] = assignment
    if problems:
        raise MatrixError("\n".join(problems))
    return found


def expected_verdict(release: Release, expectations: dict[str, str]
                     ) -> str:
    """The release's own expectation, else its family's, else that it
    completes."""
    return expectations.get(release.version) or expectations.get(
        release.family) or "completed"


def read_outcome(run: RunResult) -> None:
    """The run's verdict and figures from its journal, as its report
    states them; "error" when there is no journal, or when it judges a
    release but does not say it ran on the one asked (then its verdict
    and figures are not this release's). Only a run that went to its
    end has figures: a refused or stopped one measured nothing whole."""
    outcome, journal = classify(run.journal, run.returncode)
    run.verdict, run.reason = outcome.status, outcome.detail
    if journal is None or run.verdict not in JUDGED:
        return  # refused, stopped or crashed: it measured nothing whole
    k3s = journal.k3s
    lab = k3s.lab if k3s else None
    run.lab_release = lab.release if lab else None
    if run.lab_release != run.release.version:
        used = f"K3s {run.lab_release}" if run.lab_release else "no lab"
        run.verdict = "error"
        run.reason = (f"the journal says the run used {used}, not "
                      f"{run.release.version}: its verdict is not "
                      f"this release's ({outcome.status}: "
                      f"{outcome.detail or 'completed'})")
        return
    run.nodes = len(k3s.nodes)
    run.not_recovered = [n.name for n in k3s.not_recovered]
    run.held_down = [n.name for n in k3s.held_down]
    run.final_source = k3s.final_source
    run.longest_outage = k3s.longest_outage
    run.slowest_after_heal = k3s.slowest_after_heal


def exit_code(runs: list[RunResult], stopped: bool) -> int:
    """0: every verdict is the one expected; 3: the matrix was stopped
    (Ctrl-C, SIGTERM) before it finished; 1: any other difference, a
    crashed, refused or interrupted run included."""
    if stopped:
        return EXIT_STOPPED
    return EXIT_MATCHED if all(r.matched for r in runs) else EXIT_MISMATCH
