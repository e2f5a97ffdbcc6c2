"""Secrets out of log files: every handler of a run redacts what it writes.

The chaosk3s control calls protect_logs at configure time with the run's
Redactor (chaosk3s.redact): from then on every record any handler of the
process writes, its traceback included, is redacted, and log files are
readable by their owner only.
"""

import logging
import os

from chaosk3s.redact import Redactor


class LogRedaction(logging.Filter):
    """Hides secrets in every record a handler writes, its traceback
    included (formatted here, so the handler prints the redacted text)."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: logging's to report
            message = str(record.msg)
        record.msg, record.args = self.redactor.text(message), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(
                record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


def _handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger))]
    return list({id(h): h for lg in loggers for h in lg.handlers}.values())


def protect_logs(redactor: Redactor) -> None:
    """From now on every log handler of this process hides secrets (the
    previous redaction is replaced), and log files are readable by their
    owner only."""
    for handler in _handlers():
        for old in [f for f in handler.filters
                    if isinstance(f, LogRedaction)]:
            handler.removeFilter(old)
        handler.addFilter(LogRedaction(redactor))
        path = getattr(handler, "baseFilename", None)
        if path:
            try:
                os.chmod(path, 0o600)
            except OSError:
                pass  # a log we cannot chmod is still redacted
