"""Journals → self-contained HTML reports and a reports/ index.

Needs nothing but journal JSON: no cluster, no lab, no network.
"""

from chaosk3s.report.index import update_index
from chaosk3s.report.journal import Journal, JournalError, load_journal
from chaosk3s.report.render import render_journal, render_report

__all__ = ["Journal", "JournalError", "load_journal", "render_journal",
           "render_report", "update_index"]
