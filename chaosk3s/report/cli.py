"""`chaosk3s report JOURNAL... [-o DIR]`, and `chaos k3s-report` for
Chaos Toolkit users through the ``chaostoolkit.cli_plugins`` entry point.

One bad file never stops the others: each failure is one line on stderr
naming the file, and the exit code is non-zero if any file failed.
"""

import sys
from collections import Counter
from pathlib import Path

import click

from chaosk3s.errors import OutputError
from chaosk3s.report import metrics
from chaosk3s.report.index import find_journals, update_index
from chaosk3s.report.journal import Journal, JournalError, load_journal
from chaosk3s.report.junit import write_junit
from chaosk3s.report.render import render_journal

_HELP = """Render Chaos Toolkit journals as self-contained HTML reports.

Each JOURNAL file gives one NAME.html, written beside it or into DIR. A
directory (e.g. reports/) renders every journal found under it, beside
each journal, and writes DIR/index.html with the history of all runs.

--junit FILE also writes every journal given or found (one test suite
each: the run, then every steady-state probe) as JUnit XML for CI;
--prometheus FILE and --pushgateway URL the latest run of each
experiment as Prometheus metrics.
"""


def report_names(journals: list[Path]) -> dict[Path, str]:
    """Output file names; journals sharing a name (every game-day run is
    journal.json) get their parent directories prefixed."""
    stems = Counter(path.stem for path in journals)
    names: dict[Path, str] = {}
    for path in journals:
        name = path.stem
        if stems[name] > 1:
            name = "_".join((*path.resolve().parent.parts[-2:], name))
        while name + ".html" in names.values():
            name += "_"
        names[path] = name + ".html"
    return names


def _fail(path: Path, exc: Exception) -> None:
    message = str(exc)
    if not isinstance(exc, JournalError):  # those name the file already
        message = f"{path}: {type(exc).__name__}: {message}"
    click.echo(f"chaosk3s report: error: {message}", err=True)


def run_report(paths: list[Path], output_dir: Path | None) -> int:
    """Render every path; return how many failed."""
    files = [p for p in paths if not p.is_dir()]
    names = report_names(files)
    failed = 0
    for path in paths:
        try:
            if path.is_dir():
                written = update_index(path)
            else:
                written = render_journal(
                    path, output_dir or path.parent, name=names[path])
        except Exception as exc:  # one bad file must not stop the others
            _fail(path, exc)
            failed += 1
            continue
        click.echo(str(written))
    return failed


def output_journals(paths: list[Path]) -> tuple[list[Journal], int]:
    """The journals named or found under directories, and how many
    files failed to load (a JSON file under a directory that is no
    journal at all is skipped, as the index skips it)."""
    journals, failed = [], 0
    for path in paths:
        found = find_journals(path) if path.is_dir() else [path]
        for item in found:
            try:
                journals.append(load_journal(item))
            except JournalError as exc:
                if path.is_dir() and exc.not_journal:
                    continue
                _fail(item, exc)
                failed += 1
    return journals, failed


def run_outputs(paths: list[Path], junit: Path | None,
                prometheus: Path | None, pushgateway: str | None) -> int:
    """Write the outputs for CI and monitoring; return how many files
    failed to load or outputs failed to be written."""
    journals, failed = output_journals(paths)
    outputs = [(junit, write_junit), (prometheus, metrics.write_textfile),
               (pushgateway, metrics.push)]
    for target, write in outputs:
        if target is None:
            continue
        try:
            click.echo(str(write(journals, target)))
        except (OSError, OutputError) as exc:
            _fail(Path(str(target)), exc)
            failed += 1
    return failed


def _command(name: str) -> click.Command:
    @click.command(name, help=_HELP, context_settings={
        "help_option_names": ["-h", "--help"]})
    @click.argument("journals", nargs=-1, required=True,
                    type=click.Path(path_type=Path))
    @click.option("-o", "--output-dir", type=click.Path(
        file_okay=False, path_type=Path),
        help="Write reports of JOURNAL files here (default: beside each).")
    @click.option("--junit", "junit", type=click.Path(
        dir_okay=False, path_type=Path), metavar="FILE",
        help="Also write the runs as JUnit XML to FILE: one test suite "
        "per journal (the run, then each steady-state probe).")
    @click.option("--prometheus", type=click.Path(
        dir_okay=False, path_type=Path), metavar="FILE",
        help="Also write the latest run of each experiment as Prometheus "
        "metrics to FILE (text format; name it *.prom in node-exporter's "
        "textfile directory).")
    @click.option("--pushgateway", metavar="URL", help="Also push those "
                  "metrics to the Pushgateway at URL (job chaosk3s).")
    def command(journals: tuple[Path, ...], output_dir: Path | None,
                junit: Path | None, prometheus: Path | None,
                pushgateway: str | None) -> None:
        if pushgateway is not None:
            try:
                metrics.check_url(pushgateway)
            except OutputError as exc:
                raise click.UsageError(str(exc)) from None
        failed = run_report(list(journals), output_dir)
        if junit or prometheus or pushgateway:
            failed += run_outputs(list(journals), junit, prometheus,
                                  pushgateway)
        if failed:
            click.echo(f"chaosk3s report: {failed} of {len(journals)} "
                       "failed", err=True)
            sys.exit(1)
    return command


report_command = _command("report")
# `chaos report` belongs to chaostoolkit-reporting; ours must not clash.
chaos_report_command = _command("k3s-report")
