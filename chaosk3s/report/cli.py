"""`chaosk3s report JOURNAL... [-o DIR]`, and `chaos k3s-report` for
Chaos Toolkit users through the ``chaostoolkit.cli_plugins`` entry point.

One bad file never stops the others: each failure is one line on stderr
naming the file, and the exit code is non-zero if any file failed.
"""

import sys
from collections import Counter
from pathlib import Path

import click

from chaosk3s.report.index import update_index
from chaosk3s.report.journal import JournalError
from chaosk3s.report.render import render_journal

_HELP = """Render Chaos Toolkit journals as self-contained HTML reports.

Each JOURNAL file gives one NAME.html, written beside it or into DIR. A
directory (e.g. reports/) renders every journal found under it, beside
each journal, and writes DIR/index.html with the history of all runs.
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


def _command(name: str) -> click.Command:
    @click.command(name, help=_HELP)
    @click.argument("journals", nargs=-1, required=True,
                    type=click.Path(path_type=Path))
    @click.option("-o", "--output-dir", type=click.Path(
        file_okay=False, path_type=Path),
        help="Write reports of JOURNAL files here (default: beside each).")
    def command(journals: tuple[Path, ...], output_dir: Path | None) -> None:
        failed = run_report(list(journals), output_dir)
        if failed:
            click.echo(f"chaosk3s report: {failed} of {len(journals)} "
                       "failed", err=True)
            sys.exit(1)
    return command


report_command = _command("report")
# `chaos report` belongs to chaostoolkit-reporting; ours must not clash.
chaos_report_command = _command("k3s-report")
