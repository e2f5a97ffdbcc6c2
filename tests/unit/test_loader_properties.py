"""Property-based: the journal loader and the activity arguments meet
any input with their own error (JournalError, ArgumentError), never a
traceback; the inventory and plan loaders are in test_input_schema."""

import inspect
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaosk3s import actions, probes
from chaosk3s.arguments import CHECKS_ATTRIBUTE, coerce
from chaosk3s.errors import ArgumentError, JournalError, SpecError
from chaosk3s.gameday.plan import load_plan
from chaosk3s.inventory import load_target
from chaosk3s.report import load_journal
from chaosk3s.report.samples import lab_journal
from tests.unit.test_input_schema import JUNK, SETTINGS, mutated

JOURNAL = json.loads(json.dumps(lab_journal(agents=2, activities=3),
                                default=str))


@SETTINGS
@given(mutated(JOURNAL))
def test_any_journal_loads_or_is_a_journal_error(tmp_path, raw):
    path = tmp_path / "journal.json"
    text = json.dumps(raw)
    path.write_text(text)
    try:
        journal = load_journal(path)
    except JournalError as exc:
        assert str(path) in str(exc)
    else:
        assert journal.status is not None
    assert path.read_text() == text  # never written to


# Every loader of a user's file, with the one error it may raise.
FILE_LOADERS = [("inv.yaml", lambda path: load_target(str(path)), SpecError),
                ("plan.yaml", load_plan, SpecError),
                ("journal.json", load_journal, JournalError)]


@pytest.mark.parametrize(("name", "load", "error"), FILE_LOADERS,
                         ids=[name for name, _, _ in FILE_LOADERS])
@SETTINGS
@given(st.text().map(str.encode) | st.binary())
def test_any_file_loads_or_is_its_loaders_error(tmp_path, name, load,
                                                error, data):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        load(path)
    except error:
        pass
    assert path.read_bytes() == data  # never written to


ACTIVITIES = [f for module in (actions, probes)
              for f in (getattr(module, name) for name in module.__all__)
              if hasattr(f, CHECKS_ATTRIBUTE)]


@st.composite
def calls(draw):
    func = draw(st.sampled_from(ACTIVITIES))
    names = [n for n in inspect.signature(func).parameters
             if n not in ("configuration", "secrets")]
    keys = (st.sampled_from(names) if names else st.nothing()) | \
        st.text(max_size=6)
    given = draw(st.dictionaries(keys, JUNK | st.text(max_size=20),
                                 max_size=4))
    return func, given


@SETTINGS
@given(calls())
def test_any_activity_arguments_convert_or_are_an_argument_error(call):
    func, given = call
    try:
        coerce(func, given, with_defaults=True)
    except ArgumentError as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)
