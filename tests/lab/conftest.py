"""Lab-tier fixtures: a real lab in network namespaces, always removed.

Run in parallel (`pytest -n 2 --dist loadfile`, pytest-xdist), each worker
has a lab of its own: worker gwK's lab is named wK (chaosk3s.namedlabs:
its own namespaces, bridge, subnet and state), set as $CHAOSK3S_LAB_NAME
for each lab-tier module, so fixtures, CLI subprocesses and `chaos run`
all use it. Serially the lab keeps $CHAOSK3S_LAB_NAME or the default.
"""

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chaosk3s.lab import hostnet
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import LabSpec, default_spec
from chaosk3s.lab.state import LabState, state_dir
from chaosk3s.namedlabs import ENV, LabNames, lab_name_from_env
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets

pytestmark = pytest.mark.lab

# Three nodes: small enough for two labs at once on the machine's two
# cores (private_labs).
SMALL_SPEC = {"nodes": [
    {"name": "server-etcd-0", "role": "etcd"},
    {"name": "server-cp-0", "role": "control-plane",
     "server": "server-etcd-0"},
    {"name": "agent-0", "role": "agent", "server": "server-etcd-0"}]}


def worker_lab_name() -> str | None:
    """wK on pytest-xdist worker gwK; None when not run in parallel."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"w{worker.removeprefix('gw')}" if worker else None


def lab_names() -> LabNames:
    """The names of this test process's lab: the worker's own, else
    $CHAOSK3S_LAB_NAME, else the default lab's."""
    return LabNames(worker_lab_name() or lab_name_from_env())


def lab_state(base: Path, name: str | None = None) -> LabState:
    """Lab name (default: this process's, lab_names()) with its state
    under base: where CLI subprocesses and `chaos run` find it when
    $CHAOSK3S_STATE_DIR is base (the default lab's state is base itself,
    lab N's base/labs/N). Every lab fixture names its lab this way."""
    name = name or lab_names().name
    return LabState(state_dir(name, base), name)


@pytest.fixture(scope="module", autouse=True)
def worker_lab():
    """A parallel worker's lab name in the environment for the module
    (autouse: set before the module's lab fixtures); unit tests that the
    same worker runs afterwards see the environment as it was."""
    name = worker_lab_name()
    old = os.environ.get(ENV)
    if name:
        os.environ[ENV] = name
    yield name
    if name and old is None:
        os.environ.pop(ENV, None)
    elif name:
        os.environ[ENV] = old


@pytest.fixture(scope="session", autouse=True)
def no_lab_left_behind(tmp_path_factory):
    """However the session ends (Ctrl-C kills the `chaos run` children
    with SIGKILL), no lab outlives it: removed by the names it uses."""
    yield
    names = lab_names()
    if hostnet.list_lab_namespaces(names) or hostnet.list_lab_links(names):
        Lab(lab_state(tmp_path_factory.mktemp("leftover") / "state")
            ).down()


@pytest.fixture
def state_root(tmp_path, monkeypatch) -> Path:
    """The lab's private state directory (under a private base, also
    seen by CLI subprocesses); no lab is up in it yet."""
    base = tmp_path / "state"
    assert hostnet.list_lab_namespaces(lab_names()) == [], \
        "another lab is up"
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(base))
    state = lab_state(base)
    yield state.root
    Lab(state).down()
    assert_nothing_left(state.root)


@pytest.fixture(scope="module")
def default_lab(tmp_path_factory) -> Lab:
    """One default lab shared by a module's tests (read-mostly tests)."""
    root = tmp_path_factory.mktemp("lab") / "state"
    lab = Lab(lab_state(root))
    old = os.environ.get("CHAOSK3S_STATE_DIR")
    os.environ["CHAOSK3S_STATE_DIR"] = str(root)
    try:
        lab.up(default_spec())
        yield lab
    finally:
        lab.down()
        if old is None:
            os.environ.pop("CHAOSK3S_STATE_DIR", None)
        else:
            os.environ["CHAOSK3S_STATE_DIR"] = old
    assert_nothing_left(root)


@pytest.fixture(scope="module")
def lab(default_lab, tmp_path_factory) -> Lab:
    """The default lab, with a ledger dir of the module's own; the run and
    targets of its tests are dropped afterwards."""
    os.environ["CHAOSK3S_LEDGER_DIR"] = str(tmp_path_factory.mktemp("led"))
    yield default_lab
    forget_targets()
    end_run()
    os.environ.pop("CHAOSK3S_LEDGER_DIR", None)


@contextmanager
def private_lab(root: Path, spec: LabSpec) -> Iterator[Lab]:
    """This process's lab (lab_names()) of its own, as private_labs."""
    with private_labs(root, spec, [lab_names().name]) as labs:
        yield next(iter(labs.values()))


@contextmanager
def private_labs(root: Path, spec: LabSpec,
                 names: list[str]) -> Iterator[dict[str, Lab]]:
    """Labs of their own, each named (a parallel worker's names carry
    its number, so workers never meet), up at once: their state and
    ledger dirs under root and in the environment (CLI subprocesses see
    them too; lab N's state is where its name resolves it); afterwards
    the run and targets are dropped, every lab is down and nothing of
    any is left."""
    keys = ("CHAOSK3S_STATE_DIR", "CHAOSK3S_LEDGER_DIR")
    old = {key: os.environ.get(key) for key in keys}
    os.environ.update(CHAOSK3S_STATE_DIR=str(root / "state"),
                      CHAOSK3S_LEDGER_DIR=str(root / "ledger"))
    labs = {name: Lab(lab_state(root / "state", name)) for name in names}
    try:
        for lab in labs.values():
            lab.up(spec)
        yield labs
    finally:
        forget_targets()
        end_run()
        for lab in labs.values():
            lab.down()
        restore_env(old)
    for name in names:
        assert_nothing_left(root / "state", LabNames(name))


def restore_env(old: dict[str, str | None]) -> None:
    """Environment variables back as they were (None: was unset)."""
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def netns_exec(node: str, *argv: str, check: bool = True
               ) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab_names().netns(node),
                           *argv], capture_output=True, text=True,
                          check=check, timeout=30)


def lab_processes(root: Path) -> list[str]:
    """Every process whose command line mentions the lab's state dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        text = cmdline.decode(errors="replace")
        if str(root) in text and "pytest" not in text:
            found.append(f"{proc.name}: {text[:120]}")
    return found


def assert_nothing_left(root: Path, names: LabNames | None = None) -> None:
    """Checked by listing: no namespace, link, process or mount of the
    lab (of names, default: this process's) remains."""
    names = names or lab_names()
    assert hostnet.list_lab_namespaces(names) == []
    assert hostnet.list_lab_links(names) == []
    assert lab_processes(root) == []
    mounts = Path("/proc/mounts").read_text()
    assert f"/run/netns/{names.prefix}" not in mounts
    links = json.loads(subprocess.run(["ip", "-j", "link"],
                                      capture_output=True, text=True,
                                      check=False).stdout)
    assert not [link["ifname"] for link in links
                if link["ifname"].startswith(names.prefix)]
