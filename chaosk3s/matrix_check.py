"""What `chaosk3s matrix` refuses before anything starts, and the plan of
runs it makes from what it accepts.

Every run is checked as `chaos run` would check it (chaosk3s.plan's
load_experiment: Chaos Toolkit's own variable handling, then every
chaosk3s activity's arguments), with the variables the matrix adds, so
a typo or a bad value refuses the matrix with one line per problem
instead of failing each run on its own lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from chaosk3s.errors import ChaosK3sError, MatrixError
from chaosk3s.matrix import (
    RESERVED_VARIABLES,
    RunResult,
    expected_verdict,
)
from chaosk3s.matrix_run import (
    DEFAULT_LAB,
    Plan,
    lab_is_up,
    new_lab_names,
)
from chaosk3s.redact import Redactor, for_experiment, secret_values

if TYPE_CHECKING:  # the lab is an extra: imported where it is used
    from chaosk3s.lab.releases import Release


def parse_vars(values: tuple[str, ...] | list[str]) -> dict:
    """--var as Chaos Toolkit parses it (KEY=VALUE, KEY:int=VALUE);
    click.BadParameter for a value its type refuses."""
    try:
        from chaostoolkit.commands.run import validate_vars
    except ImportError:  # chaostoolkit 1.18 has one commands module
        from chaostoolkit.cli import validate_vars
    return validate_vars(None, None, list(values))


def var_key(assignment: str) -> str:
    """The key of one KEY[:TYPE]=VALUE, as Chaos Toolkit parses it;
    ValueError when its value does not convert to its type."""
    import click
    try:
        return next(iter(parse_vars([assignment])))
    except click.BadParameter as exc:
        raise ValueError(exc.message) from None


def read_experiment(path: Path) -> dict:
    """The experiment as `chaos run` reads it (JSON or YAML)."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.loader import parse_experiment_from_file
    try:
        raw = parse_experiment_from_file(str(path))
    except (OSError, ValueError, ChaosException) as exc:
        raise MatrixError(f"cannot read experiment {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise MatrixError(f"{path}: not an experiment (not a mapping)")
    return raw


def _declared(path: Path) -> set[str]:
    configuration = read_experiment(path).get("configuration")
    return set(configuration) if isinstance(configuration, dict) else set()


def check_experiments(paths: list[Path], jobs: int
                      ) -> dict[Path, set[str]]:
    """Each experiment's declared variables; refused when one cannot be
    pointed at a release (no lab_k3s_version) or, with --jobs over 1, at
    a lab of its own (no lab_name)."""
    declared, problems = {}, []
    for path in paths:
        keys = declared[path] = _declared(path)
        if "lab_k3s_version" not in keys:
            problems.append(f"{path}: declares no lab_k3s_version "
                            f"variable, so the matrix cannot choose its "
                            f"K3s release")
        elif jobs > 1 and "lab_name" not in keys:
            problems.append(f"{path}: declares no lab_name variable, so "
                            f"its runs cannot have labs of their own; "
                            f"add it or run with --jobs 1 (one lab at a "
                            f"time)")
    if problems:
        raise MatrixError("\n".join(problems))
    return declared


def check_variables(variables: dict) -> None:
    taken = sorted(set(variables) & set(RESERVED_VARIABLES))
    if taken:
        raise MatrixError(
            f"--var {', '.join(taken)}: the matrix sets "
            f"{'these' if len(taken) > 1 else 'this'} on every run "
            f"(target=lab, lab_k3s_version from --releases, a lab_name of "
            f"its own); drop {'them' if len(taken) > 1 else 'it'}")


def check_release_variables(release_variables: dict[str, dict[str, str]],
                            variables: dict,
                            declared: dict[Path, set[str]]) -> None:
    """--var-for may not set what the matrix sets, nor what --var sets
    for every release, nor a variable no experiment declares."""
    keys = {key for found in release_variables.values() for key in found}
    problems = [f"--var-for {key}: the matrix sets this on every run; "
                f"drop it" for key in sorted(keys & set(RESERVED_VARIABLES))]
    problems += [f"--var-for {key}: also given with --var; give it one "
                 f"way (--var for every release, --var-for per release)"
                 for key in sorted(keys & set(variables))]
    everywhere = set().union(*declared.values())
    problems += [f"--var-for {key}: no experiment declares it (check the "
                 f"spelling against the experiments' configuration)"
                 for key in sorted(keys - everywhere
                                   - set(RESERVED_VARIABLES))]
    if problems:
        raise MatrixError("\n".join(problems))


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MatrixError(f"--out {out}: exists and is not an empty "
                          f"directory; the matrix never writes over "
                          f"earlier results: give a new directory")


def run_variables(declared: set[str], release: Release, lab: str
                  ) -> dict[str, str]:
    """What the matrix sets on a run, only keys the experiment declares
    (Chaos Toolkit refuses the others)."""
    found = {"target": "lab", "lab_k3s_version": release.version}
    if lab != DEFAULT_LAB:
        found["lab_name"] = lab
    return {k: v for k, v in found.items() if k in declared}


def precheck(run: RunResult, variables: dict, var_files: tuple
             ) -> list[str]:
    """What `chaos run` would refuse this run for, checked here."""
    from chaosk3s.plan import load_experiment  # loads chaoslib
    given = parse_vars(list(run.release_variables.values()))
    try:
        load_experiment(str(run.experiment), {**variables, **given,
                                              **run.variables}, var_files)
    except ChaosK3sError as exc:
        return str(exc).splitlines()
    return []


def _refusals(runs: list[RunResult], variables: dict, var_files: tuple
              ) -> list[str]:
    """One line per problem and experiment, with the releases it holds
    for (a bad value is usually bad on every release)."""
    found: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        for line in precheck(run, variables, var_files):
            found.setdefault((run.experiment.name, line), []).append(
                run.release.version)
    return [f"{name} on {', '.join(releases)}: {line}"
            for (name, line), releases in found.items()]


def run_folders(paths: list[Path]) -> dict[Path, str]:
    """Each experiment's folder in the output directory: its name
    without .json, numbered when two experiments share one."""
    folders: dict[Path, str] = {}
    for path in paths:
        folder, number = path.stem, 1
        while folder in folders.values():
            number += 1
            folder = f"{path.stem}-{number}"
        folders[path] = folder
    return folders


def make_plan(paths: list[Path], releases: list[Release],
              expectations: dict[str, str], variables: dict,
              arguments: list[str], var_files: tuple, jobs: int,
              out: Path,
              release_variables: dict[str, dict[str, str]] | None = None
              ) -> Plan:
    """The runs, experiment by experiment and release by release, each
    with a lab name no lab has, or refused (MatrixError). A run gets
    the --var-for of its release that its experiment declares."""
    if jobs < 1:
        raise MatrixError(f"--jobs {jobs}: give 1 or more")
    check_variables(variables)
    check_out(out)
    declared = check_experiments(paths, jobs)
    release_variables = release_variables or {}
    check_release_variables(release_variables, variables, declared)
    count = len(paths) * len(releases)
    named = all("lab_name" in keys for keys in declared.values())
    names = iter(new_lab_names(count) if named else [DEFAULT_LAB] * count)
    folders = run_folders(paths)
    runs = []
    for path in paths:
        for release in releases:
            run = RunResult(path, release, next(names),
                            out / folders[path] / release.version,
                            expected_verdict(release, expectations))
            run.variables = run_variables(declared[path], release, run.lab)
            run.release_variables = {
                key: assignment for key, assignment in
                release_variables.get(release.version, {}).items()
                if key in declared[path]}
            runs.append(run)
    problems = _refusals(runs, variables, var_files)
    if not named and lab_is_up(DEFAULT_LAB):
        problems.append("a lab is up (`chaosk3s lab status`); the matrix "
                        "starts a fresh lab for every run: take it down "
                        "first (`chaosk3s lab down`)")
    if problems:
        raise MatrixError("\n".join(problems))
    per_release = [parse_vars(list(found.values()))
                   for found in release_variables.values()]
    return Plan(runs, min(jobs, count), arguments,
                _redactor(paths, [variables, *per_release]))


def _redactor(paths: list[Path], given: list[dict]) -> Redactor:
    """The experiments' secrets and secret-named values, and the
    caller's --var and --var-for values under secret-looking names."""
    known = [v for variables in given
             for v in secret_values(configuration=variables)]
    for path in paths:
        known += for_experiment(read_experiment(path)).known
    return Redactor(known)
