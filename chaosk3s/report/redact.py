"""The report's redaction is chaosk3s.redact, the one module every
writer of an artefact uses; these names stay importable from here."""

from chaosk3s.redact import REDACTED, redact, redact_secrets, secret_key

__all__ = ["REDACTED", "redact", "redact_secrets", "secret_key"]
