"""`chaosk3s report --junit FILE`: the runs as JUnit XML, for CI systems.

One test suite per journal. Its first test case is the run itself, named
after the experiment: it passes only when the verdict is "completed" (a
deviated run is a failure; a failed, interrupted or refused run, which
did not run as asked, is an error). Then one test case per steady-state
probe of the hypothesis: before and after, each a pass, a failure (its
tolerance was not met) or an error (it raised); a probe the hypothesis
declares but the journal never ran is skipped, with why, so a CI system
never counts it as a pass. Checks during the method are one test case per
probe, failed when any check missed. The text is the report's verdict,
from the journal as loaded (bounded and redacted).

Written with the standard library's ElementTree (the JUnit schema that
Jenkins, GitLab and junitparser read: testsuites/testsuite/testcase with
failure, error and skipped children).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

from chaosk3s.files import write_atomically
from chaosk3s.report.journal import Activity, Journal, SteadyState
from chaosk3s.report.values import compact
from chaosk3s.report.verdict import COMPLETED, DEVIATED

_SHOWN = 300  # characters of a probe's output quoted in a message
# Characters XML 1.0 cannot carry, even escaped (a traceback may hold them)
_NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd"
                      r"\U00010000-\U0010ffff]")


def _clean(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _result(case: ElementTree.Element, kind: str, message: str,
            details: str = "") -> None:
    """Mark case failure/error/skipped; a pass has no child."""
    child = ElementTree.SubElement(case, kind, message=_clean(message))
    if kind != "skipped":
        child.set("type", kind)
    if details:
        child.text = _clean(details)


def _case(suite: ElementTree.Element, name: str, classname: str,
          seconds: float | None) -> ElementTree.Element:
    return ElementTree.SubElement(
        suite, "testcase", name=_clean(name), classname=_clean(classname),
        time=f"{max(seconds or 0.0, 0.0):.3f}")


def _run_case(suite: ElementTree.Element, journal: Journal,
              classname: str) -> None:
    verdict = journal.verdict
    case = _case(suite, f"run: {journal.title}", classname, journal.duration)
    if verdict.kind == COMPLETED:
        return
    kind = "failure" if verdict.kind == DEVIATED else "error"
    _result(case, kind, f"{verdict.kind}: {verdict.reason}",
            "\n".join(verdict.notes))


def _probe_case(suite: ElementTree.Element, probe: Activity,
                classname: str) -> None:
    case = _case(suite, f"{probe.phase}: {probe.name}", classname,
                 probe.duration)
    if probe.error:
        _result(case, "error", f"raised {probe.error}", probe.traceback)
    elif probe.tolerance_met is False:
        shown = compact(probe.output)[:_SHOWN]
        _result(case, "failure", f"returned {shown}, tolerance "
                f"{probe.tolerance or '?'} not met")


def _hypothesis_cases(suite: ElementTree.Element, journal: Journal,
                      phase: str, state: SteadyState | None,
                      classname: str) -> None:
    ran = state.probes if state else []
    for probe in ran:
        _probe_case(suite, probe, classname)
    names = [p.name for p in ran]
    for name in journal.hypothesis_probes:
        if name in names:
            names.remove(name)
            continue
        case = _case(suite, f"{phase}: {name}", classname, None)
        why = (f"the {phase} steady-state check did not run" if state is None
               else "not run: an earlier probe broke the steady state")
        _result(case, "skipped", why)


def _during_cases(suite: ElementTree.Element, journal: Journal,
                  classname: str) -> None:
    checks: dict[str, list[Activity]] = {}
    for state in journal.during:
        for probe in state.probes:
            checks.setdefault(probe.name, []).append(probe)
    for name, probes in checks.items():
        case = _case(suite, f"during: {name}", classname,
                     sum(p.duration or 0.0 for p in probes))
        raised = [p for p in probes if p.error]
        missed = [p for p in probes if p.tolerance_met is False]
        if raised:
            _result(case, "error", f"raised {raised[0].error} in "
                    f"{len(raised)} of {len(probes)} checks")
        elif missed:
            _result(case, "failure", f"not met in {len(missed)} of "
                    f"{len(probes)} checks during the method")


def suite_for(journal: Journal) -> ElementTree.Element:
    classname = f"chaosk3s.{journal.path.stem}"
    suite = ElementTree.Element("testsuite", name=_clean(journal.title))
    if journal.start:
        suite.set("timestamp", journal.start.isoformat())
    if journal.host:
        suite.set("hostname", _clean(journal.host))
    _run_case(suite, journal, classname)
    _hypothesis_cases(suite, journal, "before", journal.before, classname)
    _during_cases(suite, journal, classname)
    _hypothesis_cases(suite, journal, "after", journal.after, classname)
    cases = suite.findall("testcase")
    for kind in ("failure", "error", "skipped"):
        count = sum(1 for case in cases if case.find(kind) is not None)
        suite.set(kind + "s" if kind != "skipped" else kind, str(count))
    suite.set("tests", str(len(cases)))
    suite.set("time", f"{max(journal.duration or 0.0, 0.0):.3f}")
    return suite


def write_junit(journals: list[Journal], target: Path) -> Path:
    """Write every journal's suite into one JUnit XML file at target."""
    root = ElementTree.Element("testsuites", name="chaosk3s")
    for journal in journals:
        root.append(suite_for(journal))
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    write_atomically(target, '<?xml version="1.0" encoding="utf-8"?>\n'
                     + body + "\n")
    return target
