"""`chaosk3s lab down` removes what its lab's node actions left under
/run/chaosk3s (timers, CHAOSK3S_START-*.log, reboot-*.log), and only its
own: another lab's stays until that lab goes down. Two small labs, a
real stop with a node-side start on each, the files seen from outside
before and after. About a minute; in the lab tier."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosk3s import actions
from chaosk3s.lab import hostnet
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import parse_spec
from chaosk3s.namedlabs import LabNames
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets
from tests.conftest import run_cli
from tests.lab.conftest import (
    SMALL_SPEC,
    lab_names,
    private_labs,
    worker_lab_name,
)
from tests.lab.k3s_helpers import wait_for

pytestmark = pytest.mark.lab

SPEC = SMALL_SPEC
NODES = [node["name"] for node in SPEC["nodes"]]
# this process's lab (the default one when run serially) and one named
OWN = lab_names().name
OTHER = f"t{(worker_lab_name() or 'w').removeprefix('w')}f"


@pytest.fixture
def labs(tmp_path) -> Iterator[dict[str, Lab]]:
    with private_labs(tmp_path, parse_spec(SPEC, source="two small labs"),
                      [OWN, OTHER]) as labs:
        yield labs


def node_dirs(name: str) -> list[Path]:
    """Where lab name's nodes keep their fault state."""
    base = Path(LabNames(name).fault_state_dir)
    return [base / node for node in NODES]


def stop_briefly(name: str) -> list[Path]:
    """agent-0 stopped for 1 s on lab name; its node-side start runs and
    logs; the fault is then closed. The files that start left."""
    config = {"target": "lab", "lab_name": name}
    actions.stop_k3s("name:agent-0", duration=1, configuration=config)
    directory = Path(LabNames(name).fault_state_dir) / "agent-0"
    wait_for(lambda: [p for p in directory.glob("CHAOSK3S_START-*.log")
                      if "chaosk3s-started 0" in p.read_text()], 30,
             f"agent-0's node-side start on lab {name}")
    actions.start_k3s("name:agent-0", configuration=config)
    forget_targets()
    end_run()
    return sorted(directory.iterdir())


def test_lab_down_removes_its_own_node_logs_and_no_other_labs(labs):
    left = {name: stop_briefly(name) for name in (OWN, OTHER)}
    for name, files in left.items():
        print(f"\nlab {name}: {[str(p) for p in files]}")
        assert any(p.name.endswith(".log") for p in files), files
    down = run_cli("lab", "down", "--name", OWN)
    assert down.returncode == 0, down.stderr
    assert [p for p in left[OWN] if p.exists()] == []
    assert [str(d) for d in node_dirs(OWN) if d.exists()] == []
    # the other lab's files are untouched, and so is its directory
    # (lab.N, beside the default lab's node directories)
    assert all(p.exists() for p in left[OTHER])
    down = run_cli("lab", "down", "--name", OTHER)
    assert down.returncode == 0, down.stderr
    assert [p for p in left[OTHER] if p.exists()] == []
    assert not Path(LabNames(OTHER).fault_state_dir).exists()


@pytest.mark.solo
def test_down_all_from_another_state_dir_takes_these_labs_too(labs,
                                                              tmp_path):
    """What `lab down --all` does to a test suite running beside it: its
    labs were made with another state dir, and go all the same, fault
    state included (the default lab's found by its namespaces, as no
    record of it is here). Solo: it would take parallel workers' labs."""
    left = {name: stop_briefly(name) for name in (OWN, OTHER)}
    down = run_cli("lab", "down", "--all",
                   env={"CHAOSK3S_STATE_DIR": str(tmp_path / "elsewhere")})
    assert down.returncode == 0, down.stderr
    for name in (OWN, OTHER):
        assert f"lab {name}: down" in down.stderr + down.stdout
        assert hostnet.list_lab_namespaces(LabNames(name)) == []
        assert [p for p in left[name] if p.exists()] == []
    assert [str(d) for d in node_dirs(OWN) if d.exists()] == []
