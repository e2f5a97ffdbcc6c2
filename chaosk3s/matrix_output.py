"""The matrix as JSON, Markdown and HTML (matrix.json, matrix.md and
matrix.html in the output directory; the HTML links each run's report).

Every figure is one of the run's report (chaosk3s.report), under the
report's own name for it: nodes not recovered (not Ready at the steady
state after the method, but for those a fault of the run still held
down then: they are named as held down, not judged), the longest outage
(NotReady or Unknown until Ready again, of the outages that ended) and
the slowest Ready after a heal (a fault's heal to its node's Ready). A
run that left no journal has none: a dash, never a zero.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from chaosk3s.files import write_atomically
from chaosk3s.matrix import RunResult
from chaosk3s.redact import REDACTED, secret_key
from chaosk3s.report.k3sdata import WATCH_VIEW
from chaosk3s.report.render import after_heal, environment, href, seconds, when

JSON_NAME, MARKDOWN_NAME, HTML_NAME = ("matrix.json", "matrix.md",
                                       "matrix.html")
VERDICTS = (
    "Each verdict is the run's report's (README, \"Verdicts and exit "
    "codes\"): **completed**, the steady state held; **deviated**, it did "
    "not after the fault (a finding about the release); **failed**, "
    "**refused**, **interrupted**: the run did not go as written; "
    "**error**: it left no journal, or one of another release; **not "
    "run**: the matrix was stopped first. A release's family (buggy: K3s "
    "#11311; fix1: PR #11319; rework: PR #11329) is the lab's release "
    "table's (`chaosk3s lab releases`, docs/k3s-behaviour.md).")
GIVEN_PER_RELEASE = (
    "A release is the one the run's lab starts on, its family that "
    "release's; \"with KEY=VALUE\" after it is what `--var-for` gave that "
    "release's runs (the release a rolling upgrade goes to).")
FIGURES = (
    "Figures come from each run's journal (its `chaosk3s` section), as its "
    "report shows them. **Not recovered**: nodes not Ready at the "
    "steady-state check after the method; a node that a fault of the run "
    "still held down then (a server the method stops until the rollback "
    "starts it) is not judged and is named after \"held down by the "
    "run\" instead. **Longest outage**: the longest a node stayed "
    "NotReady or Unknown until it was Ready again, of the outages that "
    "ended; \"never ended\" when a node not recovered was not Ready again "
    "by the end of the run. **Slowest Ready after a heal**: the longest "
    "time from a fault's heal to its node being Ready (\"before the "
    "heal\" when it was Ready first). **Run time**: the wall time of the "
    "run's `chaos run`, its lab's start and removal included. A dash: "
    "the run measured nothing (refused, crashed, not run, or no node "
    "went NotReady).")


@dataclass
class MatrixResult:
    command: str  # the command line that made it
    runs: list[RunResult]
    jobs: int
    started: datetime
    finished: datetime
    stopped: bool
    exit_code: int
    expectations: dict[str, str]
    out: Path
    titles: dict[Path, str]  # each experiment's title

    @property
    def wall_seconds(self) -> float:
        return round((self.finished - self.started).total_seconds(), 1)

    def experiments(self) -> list[Path]:
        return list(dict.fromkeys(run.experiment for run in self.runs))


def _relative(path: Path, base: Path) -> str | None:
    return os.path.relpath(path, base) if path.is_file() else None


def shown_path(path: Path) -> str:
    """An experiment as the caller would type it: relative to the
    current directory when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_entry(run: RunResult, base: Path) -> dict:
    return {
        "experiment": shown_path(run.experiment),
        "release": run.release.version, "family": run.release.family,
        "release_variables": release_variables_shown(run),
        "bootstrap_fix": run.release.bootstrap_fix, "lab": run.lab,
        "verdict": run.verdict, "expected": run.expected,
        "matched": run.matched, "reason": run.reason,
        "nodes": run.nodes, "nodes_not_recovered": run.not_recovered,
        "nodes_held_down": run.held_down,
        "final_source": run.final_source or None,
        "longest_outage_seconds": run.longest_outage,
        "slowest_ready_after_heal_seconds": run.slowest_after_heal,
        "run_seconds": run.seconds, "returncode": run.returncode,
        "journal": _relative(run.journal, base),
        "report": _relative(run.report, base),
        "log": _relative(run.log, base)}


def as_json(result: MatrixResult) -> str:
    return json.dumps({
        "command": result.command, "started": result.started.isoformat(),
        "finished": result.finished.isoformat(),
        "wall_seconds": result.wall_seconds, "jobs": result.jobs,
        "stopped": result.stopped, "exit_code": result.exit_code,
        "expectations": result.expectations,
        "runs": [run_entry(r, result.out) for r in result.runs]},
        indent=2) + "\n"


def longest_shown(run: RunResult) -> str:
    """The longest outage; a node that never came back outlasts every
    outage that ended, so no number stands for it."""
    if run.not_recovered:
        return f"never ended ({len(run.not_recovered)} node" \
            f"{'s' if len(run.not_recovered) > 1 else ''})"
    return seconds(run.longest_outage)


def not_recovered_shown(run: RunResult) -> str:
    if run.nodes is None:
        return "—"
    shown = ", ".join(run.not_recovered) if run.not_recovered else "none"
    if run.held_down:
        shown += f" (held down by the run: {', '.join(run.held_down)})"
    if run.final_source == "watch":
        shown += f"; {WATCH_VIEW}"
    return shown


def release_variables_shown(run: RunResult) -> list[str]:
    """What --var-for set for the run's release, as typed, a value under
    a secret-looking name hidden (the run's files are redacted too)."""
    return [f"{key}={REDACTED}" if secret_key(key) else assignment
            for key, assignment in run.release_variables.items()]


def release_shown(run: RunResult) -> str:
    """The release, and what --var-for set for it: the row of a rolling
    upgrade says where it went as well as where it started."""
    given = ", ".join(release_variables_shown(run))
    return f"{run.release.version} with {given}" if given \
        else run.release.version


def _verdict_shown(run: RunResult) -> str:
    return run.verdict if run.matched else \
        f"{run.verdict} (expected {run.expected})"


def _row(run: RunResult, base: Path | None) -> list[str]:
    cells = [release_shown(run), run.release.family, _verdict_shown(run),
             not_recovered_shown(run), longest_shown(run),
             after_heal(run.slowest_after_heal), seconds(run.seconds)]
    if base is not None:
        link = _relative(run.report, base) or _relative(run.log, base)
        cells.append(f"[{'report' if run.report.is_file() else 'log'}]"
                     f"({link})" if link else "—")
    return cells


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(result: MatrixResult, links: bool = True) -> str:
    """The matrix; links to each run's report (relative to the output
    directory) unless links is False (a copy kept elsewhere)."""
    head = ["release", "family", "verdict", "not recovered",
            "longest outage", "slowest Ready after a heal", "run time"]
    head += ["report"] if links else []
    lines = ["# Release matrix", "",
             f"Made by `chaosk3s matrix` on {when(result.started)}: "
             f"{len(result.runs)} runs, {result.jobs} at a time, "
             f"{seconds(result.wall_seconds)}"
             f"{'; STOPPED before the end' if result.stopped else ''}. "
             f"Regenerate it with:", "", "```sh", result.command, "```",
             "", VERDICTS, "", FIGURES]
    if any(run.release_variables for run in result.runs):
        lines[-2:-2] = ["", GIVEN_PER_RELEASE]
    for experiment in result.experiments():
        lines += ["", f"## {result.titles.get(experiment, '')} "
                  f"(`{shown_path(experiment)}`)", "",
                  "| " + " | ".join(head) + " |",
                  "|" + " --- |" * len(head)]
        for run in result.runs:
            if run.experiment == experiment:
                lines.append("| " + " | ".join(_escape(c) for c in _row(
                    run, result.out if links else None)) + " |")
    return "\n".join(lines) + "\n"


def as_html(result: MatrixResult) -> str:
    def report_link(run: RunResult) -> str | None:
        for path in (run.report, run.log):
            if path.is_file():
                return href(path, result.out)
        return None
    return environment().get_template("matrix.html").render(
        result=result, shown_path=shown_path, longest=longest_shown,
        not_recovered=not_recovered_shown, link=report_link,
        release_variables=release_variables_shown,
        figures=FIGURES.replace("**", "").replace("`", ""),
        generated=when(result.finished))


def write_outputs(result: MatrixResult, markdown_copy: Path | None = None
                  ) -> list[Path]:
    """matrix.json, matrix.md and matrix.html in the output directory,
    and the Markdown without run links at markdown_copy."""
    written = []
    for name, content in ((JSON_NAME, as_json(result)),
                          (MARKDOWN_NAME, as_markdown(result)),
                          (HTML_NAME, as_html(result))):
        write_atomically(result.out / name, content)
        written.append(result.out / name)
    if markdown_copy is not None:
        write_atomically(markdown_copy, as_markdown(result, links=False))
        written.append(markdown_copy)
    return written
