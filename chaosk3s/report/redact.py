"""Hide secret-looking values before anything reaches a report.

Reports get mailed around after a game day, so a configuration value is
hidden when its *key name* looks secret (token, password, key, secret,
credentials, ...), and every value of a ``secrets`` block is hidden. An
``env``/``vault`` reference only names where the secret lives, so its
``type`` and ``key`` stay visible: reviewers need to see which variable a
run read, never its value.
"""

import re
from typing import Any

REDACTED = "••• redacted •••"

# Substrings that make any key name secret ("apiToken", "db_password").
_SECRET_PARTS = ("token", "passw", "passwd", "passphrase", "secret",
                 "credential", "apikey", "privatekey", "bearer")
# Whole words only: "key" must not hide "monkey" or "keyboard_layout".
_SECRET_WORDS = {"key", "keys", "pwd", "auth", "authorization", "cookie"}
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Values that are secret whatever their key is called.
_SECRET_VALUES = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|^\s*Bearer\s+\S", re.IGNORECASE)
_REFERENCE_TYPES = {"env", "vault"}
_REFERENCE_KEYS = {"type", "key", "path"}


def secret_key(name: object) -> bool:
    """True when a mapping key's name suggests its value is a secret."""
    text = str(name)
    flat = re.sub(r"[^a-z0-9]", "", text.lower())
    if any(part in flat for part in _SECRET_PARTS):
        return True
    words = {word.lower() for word in _WORDS.findall(text)}
    return bool(words & _SECRET_WORDS)


def redact(value: Any, hide_all: bool = False) -> Any:
    """A copy of value with secret-looking values replaced by REDACTED.

    hide_all hides every leaf (used for secrets blocks); references to
    env variables or vault paths keep their names either way.
    """
    if isinstance(value, dict):
        if value.get("type") in _REFERENCE_TYPES:
            return {k: (v if k in _REFERENCE_KEYS else redact(v, hide_all))
                    for k, v in value.items()}
        return {k: redact(v, hide_all or secret_key(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, hide_all) for item in value]
    if hide_all and value is not None:
        return REDACTED
    if isinstance(value, str) and _SECRET_VALUES.search(value):
        return REDACTED
    return value


def redact_secrets(secrets: Any) -> Any:
    """A secrets block: every value hidden, the scopes and names kept."""
    return redact(secrets, hide_all=True)
