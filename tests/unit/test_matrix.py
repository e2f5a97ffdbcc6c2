"""The release matrix's logic on real journals: verdicts and figures read
as the report reads them, expectations, exit codes, the three outputs,
and what is refused before anything starts. The journals are made by
the real code: the report's sample runs (chaosk3s.report.samples builds
their section with chaosk3s.journal_section) and a real `chaos run`
refused by the real chaosk3s control."""

import html
import json
import re
from pathlib import Path

import pytest

from chaosk3s.errors import MatrixError
from chaosk3s.lab.releases import parse_release, release_table
from chaosk3s.lab.spec import load_spec
from chaosk3s.lab.state import LabState
from chaosk3s.matrix import (
    EXIT_MATCHED,
    EXIT_MISMATCH,
    EXIT_STOPPED,
    RunResult,
    exit_code,
    expected_verdict,
    parse_expectations,
    parse_releases,
    read_outcome,
)
from chaosk3s.matrix_check import make_plan
from chaosk3s.matrix_output import (
    MatrixResult,
    as_markdown,
    write_outputs,
)
from chaosk3s.matrix_run import Plan, command, new_lab_names
from chaosk3s.report import load_journal
from chaosk3s.report.samples import BUGGY, FIXED, lab_journal
from tests.unit.test_refusals import PARTITION, chaos_run

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PAIR = "v1.28.15+k3s1,v1.28.15+k3s-2d0661e3"


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """No lab of this machine is looked at: the state is the test's."""
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path / "state"))


def run_with(tmp_path: Path, journal: dict | None, release: str,
             name: str = "run", expected: str = "completed") -> RunResult:
    """A run whose directory holds that journal, read as the matrix
    reads it."""
    run = RunResult(PARTITION, parse_release(release), "m1",
                    tmp_path / name, expected)
    run.directory.mkdir(parents=True)
    if journal is not None:
        run.journal.write_text(json.dumps(journal))
    run.returncode = 0
    read_outcome(run)
    return run


# -- releases and expectations ---------------------------------------------
def test_releases_are_the_lab_tables_with_their_families():
    found = parse_releases(" v1.28.15+k3s1, v1.28.15+k3s-2d0661e3 ,"
                           "v1.31.4+k3s1")
    assert [(r.version, r.family) for r in found] == [
        ("v1.28.15+k3s1", "buggy"), ("v1.28.15+k3s-2d0661e3", "fix1"),
        ("v1.31.4+k3s1", "rework")]
    # every row `chaosk3s lab releases` prints starts with one it accepts
    for row in release_table():
        first = row["versions"].split("-v")[0]
        first += "" if "+" in first else "+k3s1"
        assert parse_releases(first)[0].family == row["family"]


def test_bad_releases_are_all_named_at_once():
    with pytest.raises(MatrixError) as caught:
        parse_releases("v1.28.15+k3s1,v1.99.1+k3s1,,v1.28.15+k3s1,"
                       "v1.28.15+k3s-abcdef12,v1.28.3+k3s1")
    lines = str(caught.value).splitlines()
    assert len(lines) == 5, lines
    assert lines[0].startswith("--releases v1.99.1+k3s1: unknown K3s "
                               "release")
    assert "empty entry" in lines[1]
    assert lines[2] == "--releases names v1.28.15+k3s1 twice"
    assert "not in the lab's release table" in lines[3]
    assert "older than the load-balancer code the lab models" in lines[4]
    for text in ("", " , "):
        with pytest.raises(MatrixError):
            parse_releases(text)


def test_expectations_by_release_or_family_release_first():
    releases = parse_releases(PAIR + ",v1.31.4+k3s1")
    found = parse_expectations(
        ("buggy=deviated, v1.31.4+k3s1=completed", "fix1=failed",
         "v1.28.15+k3s-2d0661e3=completed"), releases)
    assert found == {"buggy": "deviated", "v1.31.4+k3s1": "completed",
                     "fix1": "failed", "v1.28.15+k3s-2d0661e3": "completed"}
    said = [expected_verdict(r, found) for r in releases]
    assert said == ["deviated", "completed", "completed"]
    assert expected_verdict(releases[0], {}) == "completed"


def test_bad_expectations_are_refused_with_what_to_write():
    releases = parse_releases(PAIR)
    with pytest.raises(MatrixError) as caught:
        parse_expectations(("v1.31.4+k3s1=deviated,rework=completed",
                            "buggy=passed,v1.28.15+k3s1", "=completed",
                            "buggy=deviated,buggy=completed"), releases)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("--expect v1.31.4+k3s1: not one of the "
                               "matrix's releases (v1.28.15+k3s1, "
                               "v1.28.15+k3s-2d0661e3) nor a family")
    assert lines[1].startswith("--expect rework: not one of")
    assert lines[2].startswith("--expect buggy=passed: unknown verdict; "
                               "one of completed, deviated, failed")
    assert "not run" not in lines[2]  # never an outcome to hope for
    assert lines[3] == ("--expect 'v1.28.15+k3s1': expected "
                        "RELEASE=VERDICT, e.g. v1.28.15+k3s1=completed")
    assert lines[4].startswith("--expect '=completed'")
    assert lines[5] == ("--expect buggy: given twice, as deviated and "
                        "completed")


# -- verdicts and figures from journals ------------------------------------
def test_a_fixed_run_completes_with_the_reports_figures(tmp_path):
    run = run_with(tmp_path, lab_journal(), FIXED)
    report = load_journal(run.journal).k3s
    assert run.verdict == "completed" and run.matched
    assert run.lab_release == FIXED and run.nodes == 5
    assert run.not_recovered == []
    # the sample's agents: NotReady 12 s + 0.3 s·i after the cut at 8 s,
    # Ready 3.5 s + 0.4 s·i after the heal at 38 s; agent-2 is the worst
    assert run.longest_outage == pytest.approx(21.7)
    assert run.slowest_after_heal == pytest.approx(4.3)
    assert (run.longest_outage, run.slowest_after_heal) == (
        report.longest_outage, report.slowest_after_heal)


def test_a_buggy_run_deviates_and_never_hides_its_lost_nodes(tmp_path):
    from chaosk3s.matrix_output import longest_shown, not_recovered_shown
    run = run_with(tmp_path, lab_journal(buggy=True), BUGGY,
                   expected="deviated")
    assert (run.verdict, run.matched) == ("deviated", True)
    assert run.not_recovered == ["agent-0", "agent-2"]
    assert run.longest_outage == pytest.approx(21.6)  # agent-1's, ended
    assert longest_shown(run) == "never ended (2 nodes)"
    assert not_recovered_shown(run) == "agent-0, agent-2"


def test_a_journal_of_another_release_is_an_error_not_a_verdict(tmp_path):
    run = run_with(tmp_path, lab_journal(), "v1.31.4+k3s1")
    assert run.verdict == "error" and not run.matched
    assert run.reason.startswith(
        f"the journal says the run used K3s {FIXED}, not v1.31.4+k3s1")
    assert run.longest_outage is None and run.nodes is None
    plain = lab_journal()
    del plain["chaosk3s"]  # a run without the chaosk3s control
    run = run_with(tmp_path, plain, FIXED, name="plain")
    assert run.verdict == "error"
    assert "says the run used no lab" in run.reason


def test_a_refused_run_is_refused_never_a_pass(tmp_path):
    """A real `chaos run` the real control refuses (a typo)."""
    _result, journal = chaos_run(tmp_path, "--var", "partition_second=1",
                                 str(PARTITION))
    run = run_with(tmp_path, journal, FIXED)
    assert run.verdict == "refused" and not run.matched
    assert run.reason.startswith("The chaosk3s control refused the run")
    assert run.nodes is None and run.longest_outage is None
    assert exit_code([run], stopped=False) == EXIT_MISMATCH
    run.expected = "refused"
    assert exit_code([run], stopped=False) == EXIT_MATCHED


def test_no_journal_or_a_partial_one(tmp_path):
    run = run_with(tmp_path, None, FIXED)
    assert run.verdict == "error"
    assert run.reason == "chaos run exited 0 and left no journal"
    partial = lab_journal()
    del partial["status"], partial["end"]  # a killed run's journal so far
    run = run_with(tmp_path, partial, FIXED, name="partial")
    assert run.verdict == "interrupted"


def test_exit_codes(tmp_path):
    good = run_with(tmp_path, lab_journal(), FIXED, name="a")
    bad = run_with(tmp_path, lab_journal(buggy=True), BUGGY, name="b")
    assert exit_code([good], stopped=False) == EXIT_MATCHED
    assert exit_code([good, bad], stopped=False) == EXIT_MISMATCH
    bad.expected = "deviated"
    assert exit_code([good, bad], stopped=False) == EXIT_MATCHED
    assert exit_code([good, bad], stopped=True) == EXIT_STOPPED
    never = RunResult(PARTITION, parse_release(FIXED), "m2", tmp_path)
    assert never.verdict == "not run" and not never.matched


# -- outputs ---------------------------------------------------------------
def _result(tmp_path: Path) -> MatrixResult:
    from datetime import UTC, datetime, timedelta
    out = tmp_path / "out"
    runs = [run_with(out, lab_journal(), FIXED, name="fixed"),
            run_with(out, lab_journal(buggy=True), BUGGY, name="buggy",
                     expected="deviated"),
            run_with(out, None, "v1.31.4+k3s1", name="crashed")]
    runs[0].seconds, runs[1].seconds = 28.4, 57.0
    runs[2].log.write_text("Traceback: boom\n")
    from chaosk3s.report.render import render_report
    for run in runs[:2]:
        run.report.write_text(render_report(load_journal(run.journal)))
    began = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    return MatrixResult("chaosk3s matrix x.json --releases ...", runs, 3,
                        began, began + timedelta(seconds=61), False,
                        exit_code(runs, False), {"buggy": "deviated"}, out,
                        {PARTITION: "Agents survive"})


def test_json_markdown_and_html_say_the_same(tmp_path):
    result = _result(tmp_path)
    copy = tmp_path / "docs" / "compatibility.md"
    written = write_outputs(result, copy)
    assert [p.name for p in written] == ["matrix.json", "matrix.md",
                                         "matrix.html", "compatibility.md"]
    data = json.loads((result.out / "matrix.json").read_text())
    assert data["exit_code"] == 1 and data["wall_seconds"] == 61.0
    fixed, buggy, crashed = data["runs"]
    assert fixed["verdict"] == "completed" and fixed["matched"]
    assert fixed["family"] == parse_release(FIXED).family
    assert fixed["longest_outage_seconds"] == pytest.approx(21.7)
    assert fixed["slowest_ready_after_heal_seconds"] == pytest.approx(4.3)
    assert fixed["report"] == "fixed/journal.html"
    assert buggy["nodes_not_recovered"] == ["agent-0", "agent-2"]
    assert (crashed["verdict"], crashed["matched"]) == ("error", False)
    assert crashed["journal"] is None and crashed["report"] is None
    assert crashed["log"] == "crashed/journal.log"
    assert crashed["longest_outage_seconds"] is None

    markdown = (result.out / "matrix.md").read_text()
    rows = [line for line in markdown.splitlines()
            if line.startswith("| v")]
    # the family is the release table's (the samples' "FIXED" release is
    # in fact a pre-fix one: docs/k3s-behaviour.md section 0.1)
    family = parse_release(FIXED).family
    assert rows[0] == (f"| {FIXED} | {family} | completed | none | 21.7 s | "
                       f"4.3 s | 28.4 s | [report](fixed/journal.html) |")
    assert rows[1].startswith(f"| {BUGGY} | buggy | deviated | agent-0, "
                              f"agent-2 | never ended (2 nodes) | 3.9 s |")
    assert rows[2] == ("| v1.31.4+k3s1 | rework | error (expected "
                       "completed) | — | — | — | — | [log]"
                       "(crashed/journal.log) |")
    assert "```sh\nchaosk3s matrix x.json --releases ...\n```" in markdown
    assert "](" not in copy.read_text()  # the docs copy links nothing
    assert copy.read_text() == as_markdown(result, links=False)

    page = html.unescape((result.out / "matrix.html").read_text())
    assert 'href="./fixed/journal.html"' in page
    assert 'href="./crashed/journal.log"' in page
    assert 'class="pill p-error"' in page
    assert "never ended (2 nodes)" in page and "21.7 s" in page
    assert "1 not as expected" in page


# -- refused before anything starts ----------------------------------------
def _plan(tmp_path: Path, paths=(PARTITION,), releases=PAIR,
          variables=None, jobs=1, out=None, expect=()):
    found = parse_releases(releases)
    return make_plan(list(paths), found, parse_expectations(expect, found),
                     variables or {}, [], (), jobs,
                     out or tmp_path / "out")


def test_a_bad_value_is_refused_for_every_release_before_any_lab(tmp_path):
    with pytest.raises(MatrixError) as caught:
        _plan(tmp_path, variables={"partition_seconds": "abc",
                                   "partition_secnds": "3"})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"etcd_only_partition.json on "
                               f"{PAIR.replace(',', ', ')}: --var "
                               f"partition_secnds: the experiment")
    assert "argument seconds='abc' is invalid" in lines[1]
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "state").exists()


def test_what_the_matrix_sets_and_where_it_writes(tmp_path):
    with pytest.raises(MatrixError, match=r"--var lab_k3s_version, target:"
                       r" the matrix sets these"):
        _plan(tmp_path, variables={"target": "inv.yaml",
                                   "lab_k3s_version": "v1.31.4+k3s1"})
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "matrix.json").write_text("{}")
    with pytest.raises(MatrixError, match="never writes over earlier"):
        _plan(tmp_path, out=tmp_path / "used")
    with pytest.raises(MatrixError, match="--jobs 0: give 1 or more"):
        _plan(tmp_path, jobs=0)


def test_experiments_that_cannot_be_pointed_at_a_lab(tmp_path):
    raw = json.loads(PARTITION.read_text())
    no_release = tmp_path / "no_release.json"
    no_release.write_text(json.dumps({**raw, "configuration": {
        k: v for k, v in raw["configuration"].items()
        if k != "lab_k3s_version"}}))
    no_name = tmp_path / "no_name.json"
    no_name.write_text(json.dumps({**raw, "configuration": {
        k: v for k, v in raw["configuration"].items() if k != "lab_name"}}))
    with pytest.raises(MatrixError) as caught:
        _plan(tmp_path, paths=(no_release, no_name), jobs=2)
    lines = str(caught.value).splitlines()
    assert lines[0] == (f"{no_release}: declares no lab_k3s_version "
                        f"variable, so the matrix cannot choose its K3s "
                        f"release")
    assert lines[1].startswith(f"{no_name}: declares no lab_name variable"
                               f", so its runs cannot have labs of their "
                               f"own; add it or run with --jobs 1")


def test_an_up_lab_is_never_reused(tmp_path):
    """Without named labs every run uses the default lab: one that is
    already up would be reused by the run and outlive it."""
    raw = json.loads(PARTITION.read_text())
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text(json.dumps({**raw, "configuration": {
        k: v for k, v in raw["configuration"].items() if k != "lab_name"}}))
    LabState().save(load_spec(None, FIXED), phase="up")
    with pytest.raises(MatrixError, match="a lab is up"):
        _plan(tmp_path, paths=(unnamed,))


def with_lab_name(tmp_path: Path) -> Path:
    """The partition experiment, declaring lab_name as every shipped
    experiment does once named labs are in."""
    raw = json.loads(PARTITION.read_text())
    raw["configuration"].setdefault("lab_name", {
        "type": "env", "key": "CHAOSK3S_LAB_NAME", "default": "default"})
    path = tmp_path / PARTITION.name
    path.write_text(json.dumps(raw))
    return path


def test_each_run_gets_its_release_and_a_lab_of_its_own(tmp_path):
    experiment = with_lab_name(tmp_path)
    plan = _plan(tmp_path, paths=(experiment,),
                 releases=PAIR + ",v1.31.4+k3s1", jobs=5,
                 expect=("buggy=deviated",))
    assert plan.jobs == 3  # never more at a time than runs
    names = [run.lab for run in plan.runs]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"[a-z][a-z0-9]{0,7}", n) for n in names)
    assert [r.expected for r in plan.runs] == ["deviated", "completed",
                                                "completed"]
    first = command(Plan(plan.runs, 3, ["--var", "partition_seconds=4"]),
                    plan.runs[0])
    assert first[first.index("run"):] == [
        "run", "--journal-path", str(plan.runs[0].journal),
        "--var", "target=lab", "--var", "lab_k3s_version=v1.28.15+k3s1",
        "--var", f"lab_name={names[0]}", "--var", "partition_seconds=4",
        str(experiment)]


def test_experiments_of_one_name_get_folders_of_their_own(tmp_path):
    (tmp_path / "a").mkdir()
    copy = tmp_path / "a" / PARTITION.name
    copy.write_text(PARTITION.read_text())
    plan = _plan(tmp_path, paths=(PARTITION, copy), releases=FIXED)
    assert [run.directory.relative_to(tmp_path / "out") for run in
            plan.runs] == [Path("etcd_only_partition", FIXED),
                           Path("etcd_only_partition-2", FIXED)]


def test_lab_names_skip_those_taken():
    taken = set(new_lab_names(40, taken=lambda name: False))
    assert len(taken) == 40
    assert all(re.fullmatch(r"[a-z][a-z0-9]{0,7}", n) for n in taken)
    again = new_lab_names(40, taken=lambda name: name in taken)
    assert not taken & set(again)


def test_yaml_experiments_as_chaos_reads_them_and_garbage_refused(tmp_path):
    import yaml
    raw = json.loads(with_lab_name(tmp_path).read_text())
    as_yaml = tmp_path / "partition.yaml"
    as_yaml.write_text(yaml.safe_dump(raw))
    plan = _plan(tmp_path, paths=(as_yaml,), releases=FIXED)
    assert plan.runs[0].variables["lab_k3s_version"] == FIXED
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(MatrixError, match=f"cannot read experiment "
                       f"{garbage}"):
        _plan(tmp_path, paths=(garbage,))


# -- --var-for: a value per release ----------------------------------------
ROLLING = EXPERIMENTS / "rolling_upgrade_outage.json"
REWORK_PAIR = "v1.28.15+k3s1,v1.31.4+k3s1"


def _var_for(releases: str, *pairs: tuple[str, str]) -> dict:
    from chaosk3s.matrix import parse_release_variables
    from chaosk3s.matrix_check import var_key
    return parse_release_variables(pairs, parse_releases(releases), var_key)


def test_var_for_reaches_its_release_and_only_experiments_declaring_it(
        tmp_path):
    given = _var_for(REWORK_PAIR,
                     ("v1.28.15+k3s1", "target_version=v1.28.15+k3s-2d0661e3"),
                     ("v1.31.4+k3s1", "target_version=v1.31.7+k3s1"),
                     ("v1.31.4+k3s1", "upgrade_timeout:int=90"))
    found = parse_releases(REWORK_PAIR)
    plan = make_plan([ROLLING, EXPERIMENTS / "etcd_only_partition.json"],
                     found, {}, {}, [], (), 4, tmp_path / "out", given)
    rolling = {r.release.version: r for r in plan.runs
               if r.experiment == ROLLING}
    assert rolling["v1.28.15+k3s1"].release_variables == {
        "target_version": "target_version=v1.28.15+k3s-2d0661e3"}
    assert rolling["v1.31.4+k3s1"].release_variables == {
        "target_version": "target_version=v1.31.7+k3s1",
        "upgrade_timeout": "upgrade_timeout:int=90"}
    # the partition declares neither: its runs get nothing of them
    assert all(not r.release_variables for r in plan.runs
               if r.experiment != ROLLING)
    argv = command(Plan(plan.runs, 2, ["--var", "outage_seconds:int=8"]),
                   rolling["v1.31.4+k3s1"])
    assert argv[argv.index("run"):][3:] == [
        "--var", "target=lab", "--var", "lab_k3s_version=v1.31.4+k3s1",
        "--var", f"lab_name={rolling['v1.31.4+k3s1'].lab}",
        "--var", "target_version=v1.31.7+k3s1",
        "--var", "upgrade_timeout:int=90", "--var", "outage_seconds:int=8",
        str(ROLLING)]


def test_var_for_bad_input_is_refused_whole(tmp_path):
    with pytest.raises(MatrixError) as caught:
        _var_for(REWORK_PAIR, ("v1.31.9+k3s1", "target_version=v1.31.7+k3s1"),
                 ("v1.31.4+k3s1", "target_version"),
                 ("v1.31.4+k3s1", "=v1"),
                 ("v1.31.4+k3s1", "upgrade_timeout:int=soon"),
                 ("v1.28.15+k3s1", "target_version=v1.28.15+k3s-2d0661e3"),
                 ("v1.28.15+k3s1", "target_version=v1.29.15+k3s1"))
    lines = str(caught.value).splitlines()
    assert lines[0] == ("--var-for v1.31.9+k3s1: not one of the matrix's "
                        "releases (v1.28.15+k3s1, v1.31.4+k3s1)")
    assert lines[1].startswith("--var-for v1.31.4+k3s1 'target_version': "
                               "expected KEY[:TYPE]=VALUE")
    assert lines[2].startswith("--var-for v1.31.4+k3s1 '=v1': expected")
    assert lines[3].startswith("--var-for v1.31.4+k3s1 "
                               "upgrade_timeout:int=soon: ")
    assert lines[4] == "--var-for v1.28.15+k3s1: target_version given twice"
    assert len(lines) == 5
    found = parse_releases(REWORK_PAIR)
    for given, variables, wanted in (
            ({"v1.31.4+k3s1": {"lab_name": "lab_name=x"}}, {},
             "--var-for lab_name: the matrix sets this"),
            ({"v1.31.4+k3s1": {"outage_seconds": "outage_seconds=3"}},
             {"outage_seconds": "4"}, "--var-for outage_seconds: also "
             "given with --var"),
            ({"v1.31.4+k3s1": {"target_versoin": "target_versoin=v1"}}, {},
             "--var-for target_versoin: no experiment declares it")):
        with pytest.raises(MatrixError, match=re.escape(wanted)):
            make_plan([ROLLING], found, {}, variables, [], (), 2,
                      tmp_path / "out", given)
    # a value the experiment's own checks refuse, for its release only
    with pytest.raises(MatrixError) as caught:
        make_plan([ROLLING], found, {}, {}, [], (), 2, tmp_path / "out",
                  _var_for(REWORK_PAIR, ("v1.31.4+k3s1", "target_version=60"),
                           ("v1.28.15+k3s1", "upgrade_timeout:int=-5")))
    lines = str(caught.value).splitlines()
    # each release's runs are refused for their own value only
    old_lines = [li for li in lines if " on v1.28.15+k3s1: " in li]
    new_lines = [li for li in lines if " on v1.31.4+k3s1: " in li]
    assert len(old_lines) + len(new_lines) == len(lines) == 7, lines
    assert all("timeout=-5 is invalid" in li for li in old_lines)
    assert all("version='60' is invalid" in li for li in new_lines)
    assert not (tmp_path / "out").exists()


def test_var_for_is_shown_beside_its_release_and_secrets_are_not(tmp_path):
    from datetime import UTC, datetime
    out = tmp_path / "out"
    runs = [run_with(out, lab_journal(), FIXED, name="fixed")]
    runs[0].release_variables = {
        "target_version": "target_version=v1.29.15+k3s1",
        "api_token": "api_token=tok-7070-secret"}
    began = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    result = MatrixResult("chaosk3s matrix ...", runs, 1, began, began,
                          False, 0, {}, out, {PARTITION: "Agents survive"})
    page = as_markdown(result)
    assert (f"| {FIXED} with target_version=v1.29.15+k3s1, "
            f"api_token=«redacted» | {runs[0].release.family} | "
            f"completed |") in page
    assert "is what `--var-for` gave that release's runs" in page
    assert "--var-for" not in as_markdown(_result(tmp_path / "plain"))
    written = write_outputs(result)
    for path in written:
        text = html.unescape(path.read_text())
        assert "tok-7070-secret" not in text, path
        assert "target_version=v1.29.15+k3s1" in text, path
    entry = json.loads((out / "matrix.json").read_text())
    assert entry["runs"][0]["release_variables"] == [
        "target_version=v1.29.15+k3s1", "api_token=«redacted»"]


def test_a_run_judged_on_the_watchs_view_says_so_in_the_matrix(tmp_path):
    """A completed run whose fresh read at the check after the method did
    not answer is not shown as if the API had said every node was
    Ready."""
    raw = lab_journal()
    raw["chaosk3s"].update(final_source="watch",
                           final_error="no fresh read within 5s: timed out")
    watched = run_with(tmp_path, raw, FIXED, "watched")
    fresh = run_with(tmp_path, lab_journal(), FIXED, "fresh")
    assert (watched.verdict, watched.final_source) == ("completed", "watch")
    assert fresh.final_source == "api"
    from chaosk3s.matrix_output import not_recovered_shown, run_entry
    assert not_recovered_shown(watched) == (
        "none; judged on the readiness watch's view, not a fresh API read")
    assert not_recovered_shown(fresh) == "none"
    assert run_entry(watched, tmp_path)["final_source"] == "watch"
