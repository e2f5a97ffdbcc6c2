"""Game-day notifications as chat tools render them.

A plan chooses the format per webhook (`format: slack | teams`, default
`json`, chaosk3s's own payload, unchanged). The message says the same in
both: the game day, the target, the verdict (or the experiment that
deviated), the experiments that did not complete with why, and where the
reports are (a path on the runner; chaosk3s serves nothing).

- Slack incoming webhooks take `text` (the notification's fallback) and
  Block Kit `blocks`; mrkdwn treats `&`, `<` and `>` as markup (a `<!here>`
  would ping a channel), so every value is escaped, and a section's text
  is at most 3000 characters (Slack's text-object limit).
- Microsoft Teams (a Workflows "when a webhook request is received" flow,
  or a channel's Incoming Webhook) takes a `message` whose attachment is
  an Adaptive Card (schema 1.4): TextBlocks and a FactSet.
"""

from __future__ import annotations

from typing import Any

SLACK_TEXT_LIMIT = 3000
LISTED = 10  # experiments named in one message, then "and N more"
DETAIL = 200  # characters of an experiment's detail in a message
CARD = "application/vnd.microsoft.card.adaptive"
_VERDICTS = {0: "all completed", 1: "deviated", 2: "error or refused",
             3: "skipped (outside its windows)"}


def _clip(text: str, limit: int = SLACK_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _failed(summary: dict) -> list[dict]:
    return [e for e in summary.get("experiments") or []
            if e.get("status") not in ("completed", "skipped")]


def _lines(payload: dict) -> tuple[str, list[tuple[str, str]], list[str]]:
    """(headline, facts, one line per experiment that went wrong)."""
    event, plan = payload.get("event"), payload.get("plan")
    target = payload.get("target")
    facts = [("Target", str(target)), ("Reports", str(payload.get(
        "run_dir")))]
    if event == "start":
        return f"Game day {plan} started", facts, []
    if event == "deviation":
        item = payload.get("experiment") or {}
        facts.append(("Report", str(item.get("report"))))
        return (f"Game day {plan}: {item.get('experiment')} deviated",
                facts, [_clip(str(item.get("detail") or ""), DETAIL)])
    summary = payload.get("summary") or {}
    code = summary.get("exit_code")
    counts = ", ".join(f"{n} {status}" for status, n in
                       (summary.get("counts") or {}).items())
    facts.insert(1, ("Runs", counts or str(summary.get("message") or
                                          "nothing ran")))
    wrong = [f"{e.get('experiment')}: {e.get('status')}: "
             f"{_clip(str(e.get('detail') or ''), DETAIL)} "
             f"({e.get('report') or 'no report'})"
             for e in _failed(summary)]
    if len(wrong) > LISTED:
        wrong = wrong[:LISTED] + [f"and {len(wrong) - LISTED} more"]
    return (f"Game day {plan} finished: "
            f"{_VERDICTS.get(code, f'exit {code}')}", facts, wrong)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(
        ">", "&gt;")


def slack(payload: dict) -> dict:
    headline, facts, wrong = _lines(payload)
    facts_text = "\n".join(f"*{name}:* {_escape(value)}"
                           for name, value in facts)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(
            f"*{_escape(headline)}*\n{facts_text}")}}]
    if wrong:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": _clip("\n".join(
                f"• {_escape(line)}" for line in wrong))}})
    return {"text": _clip(_escape(headline)), "blocks": blocks}


def teams(payload: dict) -> dict:
    headline, facts, wrong = _lines(payload)
    good = payload.get("event") == "start" or (
        payload.get("summary") or {}).get("exit_code") == 0
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": headline, "weight": "Bolder",
         "size": "Medium", "wrap": True,
         "color": "Good" if good else "Attention"},
        {"type": "FactSet", "facts": [{"title": name, "value": value}
                                      for name, value in facts]}]
    body += [{"type": "TextBlock", "text": line, "wrap": True}
             for line in wrong]
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body}
    return {"type": "message", "attachments": [
        {"contentType": CARD, "contentUrl": None, "content": card}]}


def message(kind: str, payload: dict) -> dict:
    """The body to POST for a webhook of format kind."""
    return {"slack": slack, "teams": teams}.get(kind, dict)(payload)
