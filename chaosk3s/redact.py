"""Hide secrets before anything is written: the one redaction module.

Every writer of an artefact (the control's journals, the report, the
index, the game-day runner's summary and logs, the CronJob export, the
log handlers of a run) passes what it writes through here. Three rules:

- **Keys whose names mean a secret** (token, password, secret,
  credential, key, auth, cookie, kubeconfig, webhook, signature, ...)
  have their values hidden, and every value of a ``secrets`` block. An
  ``env``/``vault`` reference only names where the secret lives, so its
  ``type`` and ``key`` stay visible.
- **Secret-looking text** is hidden wherever it appears, also inside
  tracebacks and messages: URL credentials (``https://user:pw@``),
  token-like query parameters (``?access_token=``, ``sig=``, ``key=``),
  ``Authorization:`` headers, ``Bearer`` tokens, JWTs, PEM private keys,
  and ``name=value`` / ``name: value`` pairs whose name means a secret.
- **Known values** (every value of the run's ``secrets`` block and of
  secret-named configuration keys, the plan's webhook URLs) are hidden
  wherever they appear, as written, JSON-escaped or repr-escaped.
  Values shorter than MIN_KNOWN_CHARS are hidden where a key or pattern
  says so, but not hunted for in free text (they would hide ordinary
  words and numbers); nor are values past the MAX_KNOWN first or longer
  than MAX_KNOWN_CHARS.
"""

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

REDACTED = "«redacted»"  # one word: redacting twice changes nothing
MIN_KNOWN_CHARS = 5
# Hunted-for values: at most MAX_KNOWN, none longer than MAX_KNOWN_CHARS
# (a hostile secrets block must not make one huge regular expression).
MAX_KNOWN, MAX_KNOWN_CHARS = 1000, 65_536
MAX_DEPTH = 64  # deeper containers are cut, never recursed into
_CACHED_CHARS = 200

# Substrings that make any key name secret ("apiToken", "db_password").
_SECRET_PARTS = ("token", "passw", "passphrase", "secret", "credential",
                 "apikey", "privatekey", "accesskey", "bearer", "kubeconfig",
                 "webhook")
# Whole words only: "key" must not hide "monkey" or "keyboard_layout".
_SECRET_WORDS = {"key", "keys", "pwd", "auth", "authorization", "cookie",
                 "sig", "signature", "jwt"}
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_REFERENCE_TYPES = {"env", "vault"}
_REFERENCE_KEYS = {"type", "key", "path"}
# Names that read as `name: value` in a traceback but are no secret; and
# bare words that in prose name no secret ("Its keys: a, b"), though
# compounds do ("api_key: x", "client-key-data: x").
_NOT_NAMES = ("error", "exception", "warning")
_PROSE_NAMES = {"key", "keys"}

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?"
                  r"(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL)
# Names are matched once each, from where they start (the lookbehinds),
# and bounded: text like "a-a-a-..." is scanned in linear time.
_USERINFO = re.compile(r"(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]{0,31}"
                       r"://)([^\s/?#@\"'<>]+)@")
_QUERY = re.compile(r"([?&;]([^=&#\s\"'<>?]{1,64})=)([^&#\s\"'<>]*)")
_AUTH_HEADER = re.compile(
    r"\b((?:proxy-)?authorization\b[\"']?[ \t]*[:=][ \t]*[\"']?)"
    r"([^\"'\r\n,}]+)", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
# A name that holds a secret word (checked ahead, within the name, so
# "failed: password=x" does not swallow the pair inside it; secret_key
# then decides), its separator, an optional quote and the value.
_PAIR = re.compile(
    r"(?<![\w.-])(?=[\w.-]{0,64}?(?:token|passw|passphrase|secret|"
    r"credential|key|pwd|auth|cookie|sig|bearer|kubeconfig|webhook|jwt))"
    r"([\w.-]{1,64}+)([\"']?[ \t]*[:=][ \t]*)([\"']?)([^\s\"',;&}\]]+)",
    re.IGNORECASE)
_FLAG = re.compile(
    r"(?<![\w-])(--[A-Za-z][\w-]{0,63})([ \t]+)([^\s\"'-][^\s\"']*)")


def secret_key(name: object) -> bool:
    """True when a mapping key's name suggests its value is a secret."""
    return _secret_name(str(name))


@lru_cache(maxsize=4096)  # journals repeat a few hundred key names
def _secret_name(text: str) -> bool:
    flat = re.sub(r"[^a-z0-9]", "", text.lower())
    if any(part in flat for part in _SECRET_PARTS):
        return True
    words = {word.lower() for word in _WORDS.findall(text)}
    return bool(words & _SECRET_WORDS)


def _secret_name_in_text(name: str) -> bool:
    bare = name.lstrip("-")
    return secret_key(bare) and bare.lower() not in _PROSE_NAMES and \
        not bare.lower().endswith(_NOT_NAMES)


def _pair(match: re.Match) -> str:
    name, sep, quote, value = match.groups()
    if not _secret_name_in_text(name) or value == REDACTED:
        return match.group(0)
    return f"{name}{sep}{quote}{REDACTED}"


def _query(match: re.Match) -> str:
    head, name, value = match.groups()
    return f"{head}{REDACTED}" if secret_key(name) and value != REDACTED \
        else match.group(0)


def _flag(match: re.Match) -> str:
    name, space, value = match.groups()
    return f"{name}{space}{REDACTED}" if _secret_name_in_text(name) and \
        value != REDACTED else match.group(0)


# Every pattern above needs one of these; most text has none (one search
# instead of eight substitutions).
_MAYBE = re.compile(r"token|passw|passphrase|secret|credential|key|pwd|"
                    r"auth|cookie|sig|bearer|kubeconfig|webhook|jwt|://|eyJ",
                    re.IGNORECASE)


def scrub_patterns(text: str) -> str:
    """text with every secret-looking piece replaced by REDACTED."""
    if not _MAYBE.search(text):
        return text
    text = _PEM.sub(REDACTED, text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _QUERY.sub(_query, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _PAIR.sub(_pair, text)
    return _FLAG.sub(_flag, text)


def _forms(value: str) -> set[str]:
    """How a value may appear: as is, JSON-escaped, repr-escaped."""
    forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
    return {form for form in forms if len(form) >= MIN_KNOWN_CHARS}


class Redactor:
    """Patterns plus the values known to be secret in one run or file."""

    def __init__(self, known: Iterable[object] = ()):
        forms: set[str] = set()
        for value in known:
            if isinstance(value, bool) or not isinstance(
                    value, str | int | float):
                continue
            text = str(value).strip()
            if len(text) <= MAX_KNOWN_CHARS and len(forms) < 3 * MAX_KNOWN:
                forms |= _forms(text)
        ordered = sorted(forms, key=len, reverse=True)  # longest first
        self.known = tuple(ordered)
        self._known = re.compile("|".join(map(re.escape, ordered))) \
            if ordered else None
        # Journals repeat short strings (node names, states) by the
        # hundred thousand: those are scrubbed once each.
        self._cached = lru_cache(maxsize=65536)(self._scrub)

    def text(self, text: str) -> str:
        """text with known values and secret-looking pieces hidden."""
        if len(text) <= _CACHED_CHARS:
            return self._cached(text)
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        return scrub_patterns(text)

    def value(self, value: Any, hide_all: bool = False,
              by_key: bool = True, depth: int = 0) -> Any:
        """A copy of value: secret-named keys' values and (hide_all)
        every leaf hidden, every string scrubbed. by_key=False only
        scrubs (for data whose keys are names, such as node names)."""
        if isinstance(value, str):
            return REDACTED if hide_all else self.text(value)
        if isinstance(value, dict | list | tuple) and depth > MAX_DEPTH:
            return f"… (nested deeper than {MAX_DEPTH} levels; cut)"
        if isinstance(value, dict):
            return self._mapping(value, hide_all, by_key, depth)
        if isinstance(value, list | tuple):
            return [self.value(item, hide_all, by_key, depth + 1)
                    for item in value]
        return REDACTED if hide_all and value is not None else value

    def _mapping(self, value: dict, hide_all: bool, by_key: bool,
                 depth: int) -> dict:
        kind = value.get("type")
        if by_key and isinstance(kind, str) and kind in _REFERENCE_TYPES:
            return {k: (v if k in _REFERENCE_KEYS else self.value(
                v, hide_all, by_key, depth + 1)) for k, v in value.items()}
        text = self.text
        return {(text(k) if isinstance(k, str) else k): self.value(
            v, hide_all or (by_key and secret_key(k)), by_key, depth + 1)
            for k, v in value.items()}


PATTERNS = Redactor()  # patterns only, for what has no known values


def redact(value: Any, hide_all: bool = False) -> Any:
    """value with secret-named keys, secrets and patterns hidden."""
    return PATTERNS.value(value, hide_all)


def redact_secrets(secrets: Any) -> Any:
    """A secrets block: every value hidden, the scopes and names kept."""
    return PATTERNS.value(secrets, hide_all=True)


# -- what a run knows to be secret -----------------------------------------
def _leaves(value: Any, depth: int = 0) -> list:
    """Every scalar below value; a reference gives its default only."""
    if depth > MAX_DEPTH:
        return []
    if isinstance(value, dict):
        if isinstance(value.get("type"), str) and \
                value["type"] in _REFERENCE_TYPES:
            value = {k: v for k, v in value.items()
                     if k not in _REFERENCE_KEYS}
        return [leaf for v in value.values()
                for leaf in _leaves(v, depth + 1)]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _leaves(v, depth + 1)]
    return [value]


def _secret_named(value: Any, depth: int = 0) -> list:
    """The leaves under secret-named keys anywhere in value."""
    if depth > MAX_DEPTH:
        return []
    if isinstance(value, dict):
        return [leaf for k, v in value.items()
                for leaf in (_leaves(v) if secret_key(k)
                             else _secret_named(v, depth + 1))]
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _secret_named(v, depth + 1)]
    return []


def secret_values(secrets: Any = None, configuration: Any = None
                  ) -> list:
    """Values to hunt for: every value of a secrets block and every value
    under a secret-named key of a configuration."""
    return _leaves(secrets or {}) + _secret_named(configuration or {})


def for_experiment(experiment: Any, secrets: Any = None,
                   configuration: Any = None) -> Redactor:
    """A Redactor for one experiment: its own secrets block and
    configuration as written, plus (when given) as Chaos Toolkit resolved
    them (environment references read)."""
    experiment = experiment if isinstance(experiment, dict) else {}
    return Redactor(secret_values(experiment.get("secrets"),
                                  experiment.get("configuration"))
                    + secret_values(secrets, configuration))


def redact_journal(journal: dict, redactor: Redactor) -> dict:
    """A copy of a journal with its secrets hidden.

    Key rules apply to what the experiment wrote (the experiment, each
    activity, its output and exception, the variables in force); the
    `chaosk3s` section's nodes, timeline and faults are keyed by node
    names, so there known values and patterns are hidden, not names."""
    found = {}
    for key, value in journal.items():
        if key == "chaosk3s" and isinstance(value, dict):
            found[key] = {k: redactor.value(v, by_key=k == "variables")
                          for k, v in value.items()}
        else:
            found[key] = redactor.value(value)
    return found
