"""README's experiment variables are the experiment files' own."""

import json
from pathlib import Path

from chaoslib.configuration import load_configuration

from chaosk3s.variables import END, START, declared, markdown, readme_block

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json"))
# What every shipped experiment lets a user set (issue 18): the target,
# the lab's release and spec, the recovery timeout.
COMMON = {"target", "lab_k3s_version", "lab_spec", "recovery_timeout"}


def test_readme_lists_what_the_experiment_files_declare():
    readme = (ROOT / "README.md").read_text()
    assert readme_block(readme, markdown(EXPERIMENTS)) == readme, (
        "README's variables differ from experiments/*.json: run "
        "scripts/readme-variables")
    assert readme.count(START) == readme.count(END) == 1


def test_every_variable_is_typed_documented_and_set_from_the_environment(
        monkeypatch):
    for path in EXPERIMENTS:
        experiment = json.loads(path.read_text())
        variables = declared(experiment)
        assert COMMON <= {v.name for v in variables}, path.name
        for variable in variables:
            assert variable.environment == \
                f"CHAOSK3S_{variable.name.upper()}", (path.name, variable)
            assert variable.meaning and variable.type != "—", variable
            # Chaos Toolkit's own loader: the environment wins over the
            # default, and arrives as text.
            monkeypatch.setenv(variable.environment, "42")
            loaded = load_configuration(experiment["configuration"])
            assert loaded[variable.name] == "42"
            monkeypatch.delenv(variable.environment)
