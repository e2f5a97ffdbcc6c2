"""`chaosk3s gameday run|schedule|export`.

Exit codes of `run` (see chaosk3s.gameday.runner): 0 all completed, 1 a
deviation, 2 an error or a refusal (a bad plan included: it is rejected
before anything runs), 3 skipped outside the windows (--only-in-window).
"""

import dataclasses
import json
import sys
from pathlib import Path

import click

from chaosk3s.clitools import friendly
from chaosk3s.errors import EnvironmentProblem
from chaosk3s.gameday.cronjob import DEFAULT_NAMESPACE
from chaosk3s.gameday.plan import Plan, load_plan
from chaosk3s.gameday.runner import (
    EXIT_ERROR,
    EXIT_SKIPPED,
    GamedayResult,
    run_plan,
    stderr_progress,
    stop_on_signals,
)

_PLAN = click.Path(exists=True, dir_okay=False)


_friendly = friendly(EXIT_ERROR)


@click.group("gameday", context_settings={
    "help_option_names": ["-h", "--help"]})
def gameday_group() -> None:
    """Scheduled game days: run a plan now, on a schedule, or export it."""


def summary_lines(result: GamedayResult) -> list[str]:
    counts = result.counts()
    head = (f"game day {result.plan} on {result.target}: "
            + (", ".join(f"{n} {status}" for status, n in counts.items())
               or result.message or "nothing ran")
            + f" (exit {result.exit_code})")
    lines = [head]
    for index, item in enumerate(result.experiments, 1):
        where = f"  {item.report}" if item.report else ""
        lines.append(f"  {index:02d} {item.experiment:<32} {item.status:<11}"
                     f" {item.seconds:6.0f} s{where}")
    if result.run_dir:
        lines.append(f"reports: {result.run_dir}")
    return lines


def result_dict(result: GamedayResult) -> dict:
    """The result as JSON-ready data: what `run --json` prints."""
    found = dataclasses.asdict(result)
    found["run_dir"] = str(result.run_dir) if result.run_dir else None
    found["counts"] = result.counts()
    return found


@gameday_group.command("run")
@click.argument("plan_file", metavar="PLAN", type=_PLAN)
@click.option("--only-in-window", is_flag=True,
              help="Skip (exit 3) when now is outside the plan's windows, "
                   "as the exported timers and CronJobs do.")
@click.option("--skipped-ok", is_flag=True, help="Exit 0 instead of 3 "
              "when skipped outside the windows (for a CronJob, where a "
              "skip is no failed Job).")
@click.option("--json", "as_json", is_flag=True, help="Print the result "
              "as one JSON object (progress stays on stderr).")
@click.option("--summary-configmap", metavar="NAMESPACE/NAME", default=None,
              help="Also write the game day's summary into this ConfigMap "
              "of the target cluster (which must exist; the CronJob "
              "export's --summary-configmap makes it).")
@_friendly
def run_command(plan_file: str, only_in_window: bool, skipped_ok: bool,
                as_json: bool, summary_configmap: str | None) -> None:
    """Run the game day PLAN now, experiment by experiment."""
    from chaosk3s.gameday.summary_configmap import parse_where, publish
    if summary_configmap is not None:
        parse_where(summary_configmap)  # before anything runs
    plan = load_plan(plan_file)
    result = run_plan(plan, stop=stop_on_signals(stderr_progress),
                      only_in_window=only_in_window)
    if summary_configmap is not None:
        publish(plan, result, summary_configmap, stderr_progress)
    if as_json:
        click.echo(json.dumps(result_dict(result), indent=2))
    else:
        for line in summary_lines(result):
            click.echo(line)
    skipped = result.exit_code == EXIT_SKIPPED
    sys.exit(0 if skipped and skipped_ok else result.exit_code)


@gameday_group.command("schedule")
@click.argument("plan_file", metavar="PLAN", type=_PLAN)
@_friendly
def schedule_command(plan_file: str) -> None:
    """Run PLAN on its schedule, in the foreground, until SIGTERM."""
    from chaosk3s.gameday.schedule_loop import Scheduler
    scheduler = Scheduler(load_plan(plan_file))
    scheduler.install_signals()
    sys.exit(scheduler.serve())


@gameday_group.command("export")
@click.argument("plan_file", metavar="PLAN", type=_PLAN)
@click.option("--systemd", "systemd_dir", type=click.Path(file_okay=False),
              help="Write a .service and a .timer unit into DIR.")
@click.option("--cronjob", "cronjob_file", type=click.Path(dir_okay=False),
              help="Write a Kubernetes CronJob (and its ConfigMap, "
                   "ServiceAccount and RBAC) to FILE.")
@click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True,
              help="Namespace of the CronJob.")
@click.option("--image", default=None,
              help="Container image with chaostoolkit-k3s installed "
              "(see Containerfile).")
@click.option("--pvc", "pvc", metavar="SIZE", default=None,
              help="Keep reports and ledger on a PersistentVolumeClaim of "
              "SIZE (e.g. 1Gi) instead of an emptyDir.")
@click.option("--deadline-minutes", type=click.IntRange(min=1),
              default=None, help="The Job's activeDeadlineSeconds, in "
              "minutes (default: 30 per experiment, at least 60).")
@click.option("--summary-configmap", "summary", is_flag=True,
              help="Have the runner write each game day's summary "
              "(verdict, experiments, times) into a ConfigMap the export "
              "makes, with get/update on it alone.")
@_friendly
def export_command(plan_file: str, systemd_dir: str | None,
                   cronjob_file: str | None, namespace: str,
                   image: str | None, pvc: str | None,
                   deadline_minutes: int | None, summary: bool) -> None:
    """Hand PLAN's schedule to systemd or to Kubernetes."""
    if bool(systemd_dir) == bool(cronjob_file):
        raise click.UsageError("give exactly one of --systemd DIR or "
                               "--cronjob FILE")
    if systemd_dir and (pvc or deadline_minutes or summary):
        raise click.UsageError("--pvc, --deadline-minutes and "
                               "--summary-configmap are for --cronjob")
    plan = load_plan(plan_file)
    if systemd_dir:
        _export_systemd(plan, Path(systemd_dir))
    else:
        _export_cronjob(plan, Path(cronjob_file), namespace, image, pvc,
                        deadline_minutes, summary)


def _export_systemd(plan: Plan, directory: Path) -> None:
    from chaosk3s.gameday.export import verify_units, write_systemd
    paths = write_systemd(plan, directory)
    for path in paths:
        click.echo(f"wrote {path}")
    try:
        verify_units(paths)
        click.echo("systemd-analyze verify: ok")
    except EnvironmentProblem as exc:
        click.echo(f"chaosk3s: warning: {exc}", err=True)


def _export_cronjob(plan: Plan, path: Path, namespace: str,
                    image: str | None, pvc: str | None,
                    deadline_minutes: int | None, summary: bool) -> None:
    from chaosk3s.gameday.cronjob import (
        KUBERNETES_VERSION,
        secret_path,
        write_cronjob,
    )
    export = write_cronjob(plan, path, namespace, image, pvc,
                           deadline_minutes, summary)
    if plan.target == "lab":
        click.echo("chaosk3s: warning: the plan's target is the lab, which "
                   "needs a privileged pod; the CronJob is meant for an "
                   "inventory target", err=True)
    if not pvc and not summary:
        click.echo("chaosk3s: note: reports and ledger are on an emptyDir "
                   "and go with the pod; --pvc SIZE keeps them, "
                   "--summary-configmap keeps a summary", err=True)
    kinds = ", ".join(d["kind"] for d in export.documents)
    click.echo(f"wrote {path} ({kinds}; valid against the Kubernetes "
               f"{KUBERNETES_VERSION} schema)")
    if export.secret:
        files = ", ".join(sorted(export.secret["stringData"]))
        click.echo(
            f"wrote {secret_path(path)} (owner-only): the Secret "
            f"{export.secret['metadata']['name']} with the files that hold "
            f"secrets ({files}), which the CronJob reads beside the "
            f"ConfigMap; apply it with kubectl apply -f, or put it in "
            f"your secret store, and keep it out of version control")
    if export.ssh_secret_command:
        click.echo(f"the CronJob mounts the inventory's SSH keys from a "
                   f"Secret (they are not in {path}); create it with:\n"
                   f"  {export.ssh_secret_command}")


if __name__ == "__main__":
    gameday_group()
