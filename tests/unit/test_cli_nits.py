"""CLI nits: -h on every command, cron errors that name the field and
what it takes, and a plan whose schedule never falls inside its windows
refused at load."""

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from chaosk3s.cli import main
from chaosk3s.errors import SpecError
from chaosk3s.gameday.cron import cron_problem
from chaosk3s.gameday.plan import Schedule, Window, load_plan
from chaosk3s.gameday.schedule import windows_problem
from tests.conftest import run_cli


def command_paths(group: click.Group, prefix: tuple = ()) -> list[tuple]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


PATHS = [()] + command_paths(main)


def test_every_command_is_walked():
    assert {("faults",), ("cleanup",), ("lab", "status"),
            ("gameday", "run"), ("report",)} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "main")
def test_dash_h_is_help_everywhere(path):
    result = CliRunner().invoke(main, [*path, "-h"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert "-h, --help" in result.output


def test_dash_h_for_chaos_users():
    from chaosk3s.report.cli import chaos_report_command
    result = CliRunner().invoke(chaos_report_command, ["-h"])
    assert result.exit_code == 0 and "--junit FILE" in result.output


@pytest.mark.parametrize("cron,says", [
    ("0 25 * * 2", "field 2 (hour) is '25': hour takes 0-23"),
    ("61 1 * * *", "field 1 (minute) is '61': minute takes 0-59"),
    ("0 10 32 * *", "field 3 (day-of-month) is '32': day-of-month takes "
                    "1-31"),
    ("0 10 * 13 *", "field 4 (month) is '13': month takes 1-12 or "
                    "jan-dec"),
    ("0 10 * * 8", "field 5 (day-of-week) is '8': day-of-week takes 0-7 "
                   "or sun-sat"),
    ("0 10 * * mon-sun9", "field 5 (day-of-week) is 'mon-sun9'"),
    ("*/0 * * * *", "field 1 (minute) is '*/0'"),
    ("0 10 L * *", "field 3 (day-of-month) is 'L'"),
    ("0 10 * *", "has 4 field(s); a cron expression has 5: minute hour "
                 "day-of-month month day-of-week"),
    ("0 0 10 * * 2", "has 6 field(s)"),
    ("@sometimes", "is not a cron macro"),
])
def test_cron_errors_name_the_field(cron, says):
    assert says in cron_problem(cron)


@pytest.mark.parametrize("cron", ["0 10 * * 2", "*/20 9-11 * * 1-5",
                                  "0 10 * jan-mar mon,fri", "0 10 * * 7",
                                  "@daily", "0,30 8-18/2 1-15 * *"])
def test_good_crons_pass(cron):
    assert cron_problem(cron) is None


def write_plan(tmp_path: Path, **fields) -> Path:
    (tmp_path / "e.json").write_text(json.dumps(
        {"title": "t", "method": []}))
    raw = {"name": "gd", "target": "lab", "experiments": ["e.json"],
           "schedule": {"cron": "0 10 * * 2", "timezone": "UTC"}, **fields}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_bad_cron_in_a_plan_is_named_on_one_line(tmp_path):
    path = write_plan(tmp_path, schedule={"cron": "0 25 * * 2",
                                          "timezone": "UTC"})
    done = run_cli("gameday", "run", str(path))
    assert done.returncode == 2
    assert "`schedule.cron`" in done.stderr
    assert "field 2 (hour) is '25': hour takes 0-23" in done.stderr
    assert "not a 5-field" not in done.stderr


def test_a_schedule_never_inside_its_windows_is_refused(tmp_path):
    path = write_plan(tmp_path, windows=[{"days": ["sat", "sun"],
                                          "hours": "00:00-24:00"}])
    with pytest.raises(SpecError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert "none of the next 10 runs of '0 10 * * 2' (UTC: Tue " in message
    assert "every run would be skipped" in message
    done = run_cli("gameday", "run", str(path))
    assert done.returncode == 2 and "every run would be skipped" in \
        done.stderr
    assert not (tmp_path / "reports").exists()


def test_the_window_check_counts_ten_runs():
    """1st of the month at 10:00, window on Tuesdays only: refused only
    when none of the next ten 1sts is a Tuesday."""
    tuesdays = (Window(frozenset({1}), datetime.min.time(), None),)
    monthly = Schedule("0 10 1 * *", "UTC", tuesdays)
    # from 2025-01-02 the next ten 1sts (Feb..Nov 2025) include Tue 1 Apr
    assert windows_problem(monthly, datetime(2025, 1, 2, tzinfo=UTC)) \
        is None
    # from 2025-07-02: Aug 2025 .. May 2026 has no Tuesday the 1st
    assert "none of the next 10 runs" in windows_problem(
        monthly, datetime(2025, 7, 2, tzinfo=UTC))
    # ... but from 2025-07-01 09:00 the first of the ten is Tue 1 July
    assert windows_problem(monthly, datetime(2025, 7, 1, 9, tzinfo=UTC)) \
        is None
    assert windows_problem(Schedule("0 10 1 * *", "UTC"), datetime(
        2025, 7, 2, tzinfo=UTC)) is None  # no windows: always inside
