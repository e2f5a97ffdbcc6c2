"""The ledger: safe across threads and processes, durable, and never
read as empty when it cannot be read."""

import json
import multiprocessing
import threading

import pytest

from chaosk3s.ledger import Ledger, LedgerUnreadable, open_ledgers


@pytest.fixture(autouse=True)
def ledger_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path))
    return tmp_path


def test_threads_get_unique_ids_and_lose_no_entry():
    """Reproduction (issue 12): eight background activities read-modify-
    wrote the ledger without a lock and all got the same fault id."""
    ledger, ids = Ledger("r1", "lab"), []

    def add():
        for _ in range(5):
            ids.append(ledger.add({"kind": "partition", "nodes": ["a"]}))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(ids)) == 40
    assert sorted(e["id"] for e in ledger.entries()) == sorted(ids)


def _add_from_another_process(count: int) -> None:
    ledger = Ledger("r1", "lab")
    for _ in range(count):
        ledger.add({"kind": "stop", "nodes": ["a"]})


def test_processes_share_one_ledger_safely():
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_add_from_another_process, args=(10,))
             for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    ids = [e["id"] for e in Ledger("r1", "lab").entries()]
    assert len(ids) == len(set(ids)) == 60


def test_update_changes_one_entry_and_nested_calls_do_not_deadlock():
    ledger = Ledger("r1", "lab")
    first = ledger.add({"kind": "stop", "nodes": ["a"]})
    ledger.add({"kind": "stop", "nodes": ["b"]},
               check=lambda entries: ledger.entries())  # re-enters the lock
    ledger.update(first, ended_at="now")
    assert [e["id"] for e in ledger.open_faults()] == ["r12"]


def test_an_unreadable_ledger_is_set_aside_never_read_as_empty(ledger_dir):
    """Reproduction (issue 12): a ledger that failed to parse was read as
    empty, and the next write overwrote what it knew."""
    ledger = Ledger("r1", "lab")
    ledger.add({"kind": "partition", "nodes": ["a"], "ended_at": None})
    ledger.path.write_text('{"run_id": "r1", "faults": [{"id": "r11", ')
    with pytest.raises(LedgerUnreadable) as caught:
        ledger.entries()
    aside = caught.value.aside
    assert aside.exists() and not ledger.path.exists()
    assert aside.read_text().startswith('{"run_id": "r1"')
    assert "chaosk3s cleanup" in str(caught.value)
    with pytest.raises(LedgerUnreadable, match="set aside earlier"):
        ledger.add({"kind": "stop", "nodes": ["b"]})  # would reuse r11
    assert not ledger.path.exists()


def test_cleanup_reports_an_unreadable_ledger_and_keeps_it(ledger_dir):
    good = Ledger("r2", "lab")
    good.add({"kind": "stop", "nodes": ["a"], "ended_at": None})
    (ledger_dir / "r3.json").write_text("not json at all")
    found, problems = open_ledgers("lab")
    assert [ledger.run_id for ledger in found] == ["r2"]
    assert len(problems) == 1 and "r3.json cannot be read" in problems[0]
    assert list(ledger_dir.glob("r3.unreadable-*.json"))


def test_writes_are_complete_json_with_every_field(ledger_dir):
    ledger = Ledger("r1", "lab")
    ledger.add({"kind": "stop", "nodes": ["a"]})
    data = json.loads(ledger.path.read_text())
    assert data["run_id"] == "r1" and data["target"] == "lab"
    assert not [p for p in ledger_dir.iterdir() if p.name.startswith(".")]
