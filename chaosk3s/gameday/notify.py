"""Webhook notifications: a JSON POST on start, deviation and finish, as
chaosk3s's own payload or as a Slack or Teams message (chaosk3s.gameday.
chat), chosen per webhook.

A notification must never decide a game day: it has a short timeout and
its failures are reported on the progress stream, not raised. A webhook
URL usually carries its secret (a Slack or Teams URL is the credential),
so it is never shown: a failure names the webhook by its event.
"""

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from chaosk3s.gameday.chat import message
from chaosk3s.redact import Redactor

WEBHOOK_TIMEOUT = 5  # seconds; a slow receiver must not delay the chaos


def notify(url: str | None, payload: dict,
           progress: Callable[[str], None], kind: str = "json") -> bool:
    """POST payload to url in format kind; True if it answered 2xx."""
    if not url:
        return False
    body = message(kind, payload)
    request = urllib.request.Request(
        url, data=json.dumps(body, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "User-Agent": "chaosk3s-gameday"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as reply:
            reply.read(0)
        return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = Redactor([url]).text(str(getattr(exc, "reason", None)
                                          or exc))
        progress(f"webhook {payload.get('event')} failed (ignored): "
                 f"{reason}")
        return False
