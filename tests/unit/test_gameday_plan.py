"""Game-day plans: the example loads; every bad field is rejected with an
error naming it."""

import json
from datetime import time
from pathlib import Path

import pytest
import yaml

from chaosk3s.errors import SpecError
from chaosk3s.gameday.plan import load_plan

EXAMPLE = Path(__file__).parents[2] / "experiments" / "gameday.yaml"


def test_example_plan_loads():
    plan = load_plan(EXAMPLE)
    assert plan.name == "weekly-split-role" and plan.target == "lab"
    assert [e.path.name for e in plan.experiments] == [
        "etcd_only_partition.json", "node_restart.json"]
    assert dict(plan.experiments[0].vars) == {"partition_seconds": 20,
                                              "recovery_timeout": 30}
    assert plan.schedule.timezone == "Europe/Berlin"
    window = plan.schedule.windows[0]
    assert window.days == frozenset(range(5))
    assert (window.start, window.end) == (time(9), time(17))
    assert plan.report_dir == EXAMPLE.parent / "../reports"
    assert plan.retention.keep_runs == 20 and plan.stop_on_deviation


def base(tmp_path: Path) -> dict:
    (tmp_path / "e.json").write_text(json.dumps(
        {"title": "t", "method": [], "configuration": {"depth": 1}}))
    (tmp_path / "inv.yaml").write_text("cluster: c\n")
    return {"name": "gd", "target": "lab",
            "experiments": [{"path": "e.json", "vars": {"depth": 2}}],
            "schedule": {"cron": "0 10 * * 2", "timezone": "UTC"},
            "windows": [{"days": ["mon", "tue"], "hours": "09:00-17:00"}],
            "retention": {"keep_runs": 3},
            "webhooks": {"start": "http://127.0.0.1:1/x"}}


def load(tmp_path: Path, raw: dict):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_plan(path)


def test_base_plan_is_valid(tmp_path):
    plan = load(tmp_path, base(tmp_path))
    assert plan.webhook("start") == "http://127.0.0.1:1/x"
    assert plan.webhook("finish") is None
    raw = {**base(tmp_path), "target": "inv.yaml"}
    assert load(tmp_path, raw).target == str(tmp_path / "inv.yaml")


BAD = [
    # (change, field named in the error)
    ({"surprise": 1}, "`surprise`"),
    ({"name": "Bad Name"}, "`name`"),
    ({"name": ""}, "`name`"),
    ({"target": "missing.yaml"}, "`target`"),
    ({"experiments": []}, "`experiments`"),
    ({"experiments": [{"path": "nope.json"}]}, "`experiments[0].path`"),
    ({"experiments": [{"path": "plan.yaml"}]}, "`experiments[0].path`"),
    ({"experiments": [{"path": "e.json", "extra": 1}]},
     "`experiments[0].extra`"),
    ({"experiments": [{"path": "e.json", "vars": {"other": 1}}]},
     "`experiments[0].vars.other`"),
    ({"experiments": [{"path": "e.json", "vars": {"depth": True}}]},
     "`experiments[0].vars.depth`"),
    ({"experiments": [{"path": "e.json", "vars": {"depth": [1]}}]},
     "`experiments[0].vars.depth`"),
    ({"experiments": [{"path": "e.json", "vars": [1]}]},
     "`experiments[0].vars`"),
    ({"schedule": None}, "`schedule`"),
    ({"schedule": {"cron": "0 10 * *", "timezone": "UTC"}},
     "`schedule.cron`"),
    ({"schedule": {"cron": "61 10 * * *", "timezone": "UTC"}},
     "`schedule.cron`"),
    ({"schedule": {"cron": "0 10 * * 2", "timezone": "Mars/Olympus"}},
     "`schedule.timezone`"),
    ({"schedule": {"cron": "0 10 * * 2"}}, "`schedule.timezone`"),
    ({"schedule": {"cron": "0 10 * * 2", "timezone": "UTC",
                   "catch_up_minutes": -1}}, "`schedule.catch_up_minutes`"),
    ({"schedule": {"cron": "0 10 * * 2", "timezone": "UTC", "x": 1}},
     "`schedule.x`"),
    ({"windows": []}, "`windows`"),
    ({"windows": [{"days": ["someday"]}]}, "`windows[0].days[0]`"),
    ({"windows": [{"days": ["mon"], "hours": "9-17"}]},
     "`windows[0].hours`"),
    ({"windows": [{"days": ["mon"], "hours": "09:00-24:30"}]},
     "`windows[0].hours`"),
    ({"windows": [{"days": ["mon"], "hours": "25:00-26:00"}]},
     "`windows[0].hours`"),
    ({"stop_on_deviation": "yes please"}, "`stop_on_deviation`"),
    ({"report_dir": 5}, "`report_dir`"),
    ({"retention": {"keep_runs": 0}}, "`retention.keep_runs`"),
    ({"retention": {"keep_days": -2}}, "`retention.keep_days`"),
    ({"retention": {"keep_weeks": 2}}, "`retention.keep_weeks`"),
    ({"webhooks": {"start": "ftp://x"}}, "`webhooks.start`"),
    ({"webhooks": {"lunch": "http://127.0.0.1/"}}, "`webhooks.lunch`"),
    ({"webhooks": ["http://127.0.0.1/"]}, "`webhooks`"),
]


@pytest.mark.parametrize(("change", "field"), BAD,
                         ids=[f for _, f in BAD])
def test_bad_field_is_named(tmp_path, change, field):
    with pytest.raises(SpecError) as caught:
        load(tmp_path, {**base(tmp_path), **change})
    assert field in str(caught.value)
    assert str(tmp_path / "plan.yaml") in str(caught.value)


def test_not_a_mapping_and_not_yaml(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("- a list\n")
    with pytest.raises(SpecError, match="the file must be a mapping, not a "
                       "list"):
        load_plan(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_plan(path)
    with pytest.raises(SpecError, match="cannot read"):
        load_plan(tmp_path / "absent.yaml")


def test_night_window_and_bare_experiment_paths(tmp_path):
    raw = {**base(tmp_path), "experiments": ["e.json"],
           "schedule": {"cron": "30 23 * * 5", "timezone": "UTC"},
           "windows": [{"days": ["fri"], "hours": "22:00-06:00"}]}
    plan = load(tmp_path, raw)
    assert plan.experiments[0].vars == ()
    assert plan.schedule.windows[0].end == time(6)
