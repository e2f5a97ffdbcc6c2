"""How a run ended, as the chaosk3s control writes it into the journal.

Chaos Toolkit's default: an activity of the method that raises is
recorded with status "failed" and the method goes on
(chaoslib/activity.py, execute_activity catches ActivityFailed); the
run's status comes from the steady-state hypotheses only
(chaoslib/run.py, Runner._run, run_gate_hypothesis and
run_deviation_validation_hypothesis). So with every fault action failed
and the steady state met, the run ends "completed" and `chaos run` exits
0. For chaosk3s activities that is a false pass: the experiment did not
run as written. The control therefore marks such a run "failed" in
after_experiment_control, whose `state` is the journal itself
(chaoslib/control/__init__.py, Control.end); `chaos run` reads the status
after that to choose its exit code and writes the journal
(chaostoolkit/commands/run.py, run: `has_failed = journal["status"] !=
"completed"`, then `ctx.exit(1)`).
"""

from chaosk3s.errors import names_a_refusal
from chaosk3s.redact import redact

_WRAPPER = "chaoslib.exceptions.ActivityFailed: "


def is_chaosk3s(activity: dict) -> bool:
    provider = activity.get("provider") or {}
    return provider.get("type") == "python" and str(
        provider.get("module") or "").startswith("chaosk3s.")


def _error(run: dict) -> str:
    """The exception's last line, without Chaos Toolkit's wrapper."""
    lines = "".join(run.get("exception") or []).strip().splitlines()
    last = lines[-1].strip() if lines else "(no exception recorded)"
    return last[len(_WRAPPER):] if last.startswith(_WRAPPER) else last


def failed_activities(journal: dict) -> list[dict]:
    """The chaosk3s activities of the method and rollbacks that raised:
    [{"name", "phase", "error"}]."""
    failed = []
    for phase, key in (("method", "run"), ("rollback", "rollbacks")):
        for run in journal.get(key) or []:
            activity = run.get("activity") or {}
            if run.get("status") == "failed" and is_chaosk3s(activity):
                failed.append({"name": activity.get("name"),
                               "phase": phase, "error": _error(run)})
    return failed


def fail_if_activities_failed(journal: dict, failed: list[dict]) -> bool:
    """A completed run with failed chaosk3s activities becomes "failed";
    True when the status was changed. Interrupted or aborted runs keep
    their status: it says more. So does a run that deviated: the cluster
    did not hold its steady state, which is the finding, and an activity
    that raised there is most often its symptom (a restart whose server
    cannot start, K3s #11333); `failed_activities` still names it. Not
    when an activity refused what it was asked (names_a_refusal): then
    the method did not run as written, and a deviation after it is no
    finding about the cluster."""
    refused = any(names_a_refusal(f["error"]) for f in failed)
    if failed and journal.get("status") == "completed" \
            and (refused or not journal.get("deviated")):
        journal["status"] = "failed"
        return True
    return False


def variables(configuration: dict) -> dict:
    """The configuration in force, with secret-looking values hidden."""
    return redact(dict(configuration))
