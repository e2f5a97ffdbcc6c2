"""Game-day webhooks in the formats chat tools render: a real game day
(real `chaos run` subprocesses) posting to a loopback HTTP server, one
webhook per format."""

import json
from pathlib import Path

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.gameday.chat import CARD, SLACK_TEXT_LIMIT, slack, teams
from chaosk3s.gameday.plan import load_plan
from chaosk3s.gameday.runner import run_plan
from tests.unit.test_gameday_runner import (
    DEVIATING,
    OK_EXPERIMENT,
    write_plan,
)


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CHAOSK3S_LOCK_DIR", str(tmp_path / "locks"))


def slack_text(body: dict) -> str:
    assert isinstance(body["text"], str) and body["text"]
    texts = []
    for block in body["blocks"]:
        assert block["type"] == "section"
        assert block["text"]["type"] == "mrkdwn"
        assert 0 < len(block["text"]["text"]) <= SLACK_TEXT_LIMIT
        texts.append(block["text"]["text"])
    return "\n".join(texts)


def teams_card(body: dict) -> dict:
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == CARD
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert {item["type"] for item in card["body"]} <= {"TextBlock",
                                                      "FactSet"}
    return card


def test_a_game_day_posts_slack_and_teams_messages(tmp_path, hooks):
    plan = load_plan(write_plan(
        tmp_path, [(OK_EXPERIMENT, {}),
                   (DEVIATING, {"marker": str(tmp_path / "m")})],
        webhooks={"start": {"url": hooks.url + "/slack", "format": "slack"},
                  "deviation": {"url": hooks.url + "/teams",
                                "format": "teams"},
                  "finish": {"url": hooks.url + "/plain"}}))
    assert plan.webhook_format("finish") == "json"
    result = run_plan(plan, progress=lambda m: None)
    assert result.exit_code == 1
    [start, deviation, finish] = hooks.received
    assert start[0] == "/slack"
    assert "Game day tiny started" in slack_text(start[1])
    assert str(result.run_dir) in slack_text(start[1])

    assert deviation[0] == "/teams"
    card = teams_card(deviation[1])
    title = card["body"][0]
    assert title["text"] == "Game day tiny: exp1.json deviated"
    assert title["color"] == "Attention"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Target"] == "lab"
    assert Path(facts["Report"]).is_file()  # the report it points at
    assert "steady state deviated" in card["body"][2]["text"]

    assert finish[0] == "/plain"  # json: chaosk3s's own payload
    assert finish[1]["event"] == "finish"
    assert finish[1]["summary"]["exit_code"] == 1


def finish_payload(experiments: list[dict], code: int) -> dict:
    return {"event": "finish", "plan": "p", "target": "inv.yaml",
            "run_dir": "/r/p/1", "summary": {
                "exit_code": code, "experiments": experiments,
                "counts": {"failed": len(experiments)}}}


def test_slack_escapes_markup_and_stays_within_its_limits():
    hostile = [{"experiment": "<!channel> & <https://evil|click>",
                "status": "failed", "detail": "x" * 5000,
                "report": "/r/p/1/a.html"}] * 30
    body = slack(finish_payload(hostile, 2))
    text = slack_text(body)
    assert "<!channel>" not in json.dumps(body)
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in text
    assert "and 20 more" in text
    assert body["text"] == "Game day p finished: error or refused"


def test_teams_lists_what_went_wrong_and_colours_the_verdict():
    ok = teams(finish_payload([], 0))
    assert ok["attachments"][0]["content"]["body"][0]["color"] == "Good"
    bad = teams_card(teams(finish_payload([
        {"experiment": "e.json", "status": "failed", "detail": "raised",
         "report": None}], 2)))
    assert bad["body"][0]["text"] == "Game day p finished: error or refused"
    assert bad["body"][2]["text"] == "e.json: failed: raised (no report)"


@pytest.mark.parametrize("hook,where", [
    ({"url": "http://127.0.0.1/x", "format": "discord"},
     "`webhooks.finish.format`"),
    ({"format": "slack"}, "`webhooks.finish.url`"),
    ({"url": "ftp://x", "format": "slack"}, "`webhooks.finish.url`"),
    ({"url": "http://127.0.0.1/x", "colour": "red"},
     "`webhooks.finish.colour`"),
])
def test_bad_webhook_entries_are_named(tmp_path, hook, where):
    path = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                      webhooks={"finish": hook})
    with pytest.raises(SpecError, match=where.replace(".", r"\.")):
        load_plan(path)
