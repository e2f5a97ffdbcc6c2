"""`chaosk3s matrix EXPERIMENT... --releases R1,R2,...`: each experiment
once per K3s release, each run on a lab of its own, --jobs at a time;
the matrix as HTML, Markdown and JSON.

Exit codes: 0 every verdict as expected (--expect, else "completed");
1 a verdict differed (a crashed, refused or interrupted run included);
2 refused before anything started (bad input); 3 stopped by Ctrl-C or
SIGTERM (every run healed and its lab removed first).
"""

from __future__ import annotations

import shlex
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import click

from chaosk3s.clitools import friendly
from chaosk3s.gameday.runner import stderr_progress as _progress

_EPILOG = """\b
Examples:
  chaosk3s matrix experiments/etcd_only_partition.json --jobs 3 \\
    --releases v1.28.15+k3s1,v1.28.15+k3s-2d0661e3,v1.31.4+k3s1 \\
    --expect v1.28.15+k3s1=deviated
  chaosk3s matrix experiments/*.json --releases ... --expect buggy=deviated
  chaosk3s matrix experiments/rolling_upgrade_outage.json \\
    --releases v1.28.15+k3s1,v1.31.4+k3s1 \\
    --var-for v1.28.15+k3s1 target_version=v1.28.15+k3s-2d0661e3 \\
    --var-for v1.31.4+k3s1 target_version=v1.31.7+k3s1
"""


def _titles(paths: list[Path]) -> dict[Path, str]:
    from chaosk3s.matrix_check import read_experiment
    return {path: str(read_experiment(path).get("title") or path.stem)
            for path in paths}


def _default_out() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / "matrix" / stamp


@click.command("matrix", epilog=_EPILOG)
@click.argument("experiments", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
@click.option("--releases", required=True, metavar="R1,R2,...",
              help="K3s releases, comma-separated (`chaosk3s lab releases`"
              " lists them).")
@click.option("--var", "variables", multiple=True, metavar="KEY[:TYPE]=VALUE",
              help="Passed to every run, exactly as `chaos run --var`.")
@click.option("--var-for", "release_pairs", multiple=True, nargs=2,
              metavar="RELEASE KEY[:TYPE]=VALUE",
              help="Passed to that release's runs only, as `chaos run "
              "--var`, to the experiments that declare KEY (a value that "
              "must suit each release, such as an upgrade's target).")
@click.option("--var-file", "var_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Passed to every run, exactly as `chaos run --var-file`.")
@click.option("--jobs", default=1, show_default=True, type=int,
              help="Runs at a time, each on its own lab (a default lab "
              "takes about 400 MB and a share of the CPU).")
@click.option("--expect", "expectations", multiple=True,
              metavar="KEY=VERDICT[,...]",
              help="The verdict expected of a release, or of a family "
              "(buggy, fix1, rework); a release or family not named must "
              "complete.")
@click.option("--out", type=click.Path(file_okay=False),
              help="New directory for the runs and the matrix (default "
              "reports/matrix/<UTC time>).")
@click.option("--markdown", "markdown_copy", type=click.Path(dir_okay=False),
              help="Also write the Markdown matrix, without run links, "
              "here (how docs/compatibility.md is made).")
@friendly(2)
def matrix_command(experiments: tuple[str, ...], releases: str,
                   variables: tuple[str, ...],
                   release_pairs: tuple[tuple[str, str], ...],
                   var_files: tuple[str, ...], jobs: int,
                   expectations: tuple[str, ...], out: str | None,
                   markdown_copy: str | None) -> None:
    """Run each EXPERIMENT once per K3s release, each run on a lab of its
    own, and write the matrix (release, family, verdict, nodes not
    recovered, longest outage, slowest Ready after a heal) as HTML,
    Markdown and JSON. Nothing starts unless every run would be
    accepted."""
    from chaosk3s.lab.cluster import check_privileges
    from chaosk3s.matrix import (
        parse_expectations,
        parse_release_variables,
        parse_releases,
    )
    from chaosk3s.matrix_check import make_plan, parse_vars, var_key
    paths = list(dict.fromkeys(Path(e).resolve() for e in experiments))
    wanted = parse_releases(releases)
    expected = parse_expectations(expectations, wanted)
    per_release = parse_release_variables(release_pairs, wanted, var_key)
    directory = Path(out or _default_out()).resolve()
    arguments = [a for v in variables for a in ("--var", v)] + \
        [a for f in var_files for a in ("--var-file",
                                        str(Path(f).resolve()))]
    plan = make_plan(paths, wanted, expected, parse_vars(variables),
                     arguments, tuple(var_files), jobs, directory,
                     per_release)
    check_privileges()
    # As typed, but a secret given with --var is not written anywhere.
    command = plan.redactor.text("chaosk3s " + shlex.join(sys.argv[1:]))
    code = _run(plan, command, expected, directory, _titles(paths),
                Path(markdown_copy) if markdown_copy else None)
    sys.exit(code)


def _run(plan, command: str, expected: dict, directory: Path,
         titles: dict, markdown_copy: Path | None) -> int:
    from chaosk3s.gameday.runner import stop_on_signals
    from chaosk3s.matrix import exit_code
    from chaosk3s.matrix_output import MatrixResult, write_outputs
    from chaosk3s.matrix_run import run_plan
    stop = stop_on_signals(_progress, threading.Event())
    directory.mkdir(parents=True, exist_ok=True)
    _progress(f"matrix: {len(plan.runs)} run(s), {plan.jobs} at a time → "
              f"{directory}")
    started = datetime.now(UTC)
    stopped = run_plan(plan, stop, _progress)
    result = MatrixResult(
        command, plan.runs, plan.jobs, started, datetime.now(UTC), stopped,
        exit_code(plan.runs, stopped), expected, directory, titles)
    for path in write_outputs(result, markdown_copy):
        click.echo(str(path))
    _summary(result)
    return result.exit_code


def _summary(result) -> None:
    counts: dict[str, int] = {}
    for run in result.runs:
        counts[run.verdict] = counts.get(run.verdict, 0) + 1
    missed = [r for r in result.runs if not r.matched]
    said = ", ".join(f"{n} {v}" for v, n in counts.items())
    _progress(f"matrix: {said} in {result.wall_seconds:.0f} s; "
              + (f"{len(missed)} not as expected (exit "
                 f"{result.exit_code})" if missed else "every verdict as "
                 "expected (exit 0)"))
