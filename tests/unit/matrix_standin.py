"""A stand-in for the chaosk3s control in the matrix's unit tests of
tiny process experiments: it records in the journal, where the real
control does (`chaosk3s.lab`, `chaosk3s.variables`), the release and
variables the run was given, without starting a lab. The real control
on a real lab is tests/lab/test_matrix_lab.py's.
"""

import signal

from chaosk3s.lab.releases import parse_release


def configure_control(configuration: dict = None, **_kwargs) -> None:
    """`ignore_sigterm` set: a run that will not end when asked."""
    if (configuration or {}).get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def after_experiment_control(context: dict, state: dict = None,
                             configuration: dict = None, **_kwargs) -> None:
    if state is None:
        return
    version = str((configuration or {}).get("lab_k3s_version", ""))
    state["chaosk3s"] = {
        "target": "lab", "nodes": {}, "timeline": [], "faults": [],
        "variables": dict(configuration or {}),
        "lab": {"release": version,
                "family": parse_release(version).family,
                "timings_profile": "lab", "timings": {}}}
