"""Secrets out of a game day's files, whoever wrote them.

The chaosk3s control redacts its run's journal and logs as it goes; the
runner redacts them once more when `chaos run` has ended, with what the
plan knows to be secret (its webhook URLs, its vars under secret-looking
names, each experiment's secrets block and secret-named configuration),
so a run without the chaosk3s control, or text printed outside logging
(a crash's traceback), is covered too. A journal `chaos run` left empty
(it died before writing one) is removed: no journal is "no journal".
"""

import json
from pathlib import Path

from chaosk3s.files import write_atomically
from chaosk3s.gameday.plan import Experiment, Plan
from chaosk3s.redact import (
    Redactor,
    for_experiment,
    redact_journal,
    secret_values,
)


def plan_redactor(plan: Plan) -> Redactor:
    """What the plan itself knows to be secret: its webhook URLs and its
    vars under secret-looking names."""
    variables = {key: value for e in plan.experiments for key, value
                 in e.vars}
    return Redactor([url for _, url in plan.webhooks]
                    + secret_values(configuration=variables))


def experiment_redactor(plan: Plan, experiment: Experiment) -> Redactor:
    try:
        raw = json.loads(experiment.path.read_text())
    except (OSError, ValueError):
        raw = {}
    return Redactor(plan_redactor(plan).known
                    + for_experiment(raw).known)


def scrub_run(redactor: Redactor, journal: Path, logs: list[Path]) -> None:
    """Redact a finished run's journal and logs in place (0600)."""
    try:
        text = journal.read_text(encoding="utf-8")
        if not text:
            journal.unlink()
        raw = json.loads(text)
    except (OSError, ValueError):
        raw = None  # no journal: classify says so
    if isinstance(raw, dict):
        write_atomically(journal, json.dumps(
            redact_journal(raw, Redactor(redactor.known + for_experiment(
                raw.get("experiment")).known)), indent=2,
            ensure_ascii=False))
    for log in logs:
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        write_atomically(log, redactor.text(text))
