"""Starting and stopping the lab for an experiment whose target is `lab`.

Kept apart from the control so that the extension works on a real
cluster without importing the lab.
"""

import json
import logging

from chaosk3s.errors import LabStateError, SpecError
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import LabSpec, load_spec
from chaosk3s.lab.state import LabState
from chaosk3s.namedlabs import configured_lab_name

logger = logging.getLogger("chaostoolkit")


def lab_timings(configuration: dict) -> str | dict | None:
    """The experiment's ``lab_timings``: a profile name (``lab``, ``k3s``),
    a mapping (``profile`` plus per-timing overrides) or that mapping as
    JSON text, as ``--var`` passes it; None when unset."""
    value = configuration.get("lab_timings")
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("{"):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise SpecError(f"lab_timings is not valid JSON: {exc}"
                                ) from None
    return value or None


def wanted_spec(configuration: dict) -> LabSpec:
    """The lab the experiment asks for: its spec (a file, inline, or the
    default), release and timings."""
    return load_spec(configuration.get("lab_spec") or None,
                     configuration.get("lab_k3s_version") or None,
                     lab_timings(configuration))


def configured_lab(configuration: dict) -> Lab:
    """The lab the experiment's ``lab_name`` names (chaosk3s.namedlabs:
    its namespaces, bridge, subnet and state are its own)."""
    return Lab(LabState(name=configured_lab_name(configuration)))


def ensure_lab(configuration: dict) -> str | None:
    """Bring the experiment's lab up unless it runs; its name if this
    call started it, else None.

    A running lab of another K3s release, other nodes or other timings is
    refused rather than reused: the verdict would be about the wrong lab.
    """
    lab = configured_lab(configuration)  # a bad name is refused first
    spec = wanted_spec(configuration)  # and so is a bad value
    if lab.state.exists():
        _check_running(lab, spec, configuration)
        return None
    logger.info("chaosk3s: starting lab %s (K3s %s, %d nodes, %s timings)",
                lab.names.name, spec.release.version, len(spec.nodes),
                spec.timings.profile)
    lab.up(spec, progress=lambda message: logger.info("lab: %s", message))
    return lab.names.name


def _check_running(lab: Lab, asked: LabSpec, configuration: dict) -> None:
    running, down = lab.spec(), lab.command("down")
    wanted = configuration.get("lab_k3s_version")
    if wanted and wanted != running.release.version:
        raise LabStateError(
            f"a lab of K3s {running.release.version} is up, but the "
            f"experiment asks for {wanted}; run `{down}` first, set "
            f"lab_k3s_version to {running.release.version}, or give the "
            f"run a lab of its own (lab_name)")
    if configuration.get("lab_spec"):
        _check_same_nodes(running, asked, down)
    if lab_timings(configuration) and running.timings != asked.timings:
        raise LabStateError(
            f"a lab with {running.timings.profile} timings "
            f"{running.timings.values} is up, but the experiment asks for "
            f"{asked.timings.profile} timings {asked.timings.values}; run "
            f"`{down}` first")


def _shown(spec: LabSpec) -> str:
    return ", ".join(f"{n.name} ({n.role})" for n in spec.nodes)


def _check_same_nodes(running: LabSpec, asked: LabSpec,
                      down: str) -> None:
    """A running lab of other nodes is refused rather than reused: the
    verdict would be about another topology than lab_spec's."""
    def nodes(spec: LabSpec) -> list[tuple]:
        return [(n.name, n.role, n.server) for n in spec.nodes]
    if nodes(running) != nodes(asked):
        raise LabStateError(
            f"a lab of other nodes is up ({_shown(running)}), but lab_spec "
            f"{asked.source} asks for {_shown(asked)}; run `{down}` first")


def lab_facts(configuration: dict) -> dict | None:
    """The experiment's lab as the journal records it (release, behaviour
    family, timing profile and timings); None when it is not up."""
    lab = configured_lab(configuration)
    if not lab.state.exists():
        return None
    spec = lab.spec()
    return {"release": spec.release.version,
            "family": spec.release.family,
            "timings_profile": spec.timings.profile,
            "timings": spec.timings.values}


def stop_lab(name: str) -> None:
    """Take lab name down (the one ensure_lab started)."""
    logger.info("chaosk3s: taking lab %s down", name)
    Lab(LabState(name=name)).down()
