"""Starting and stopping the lab for an experiment whose target is `lab`.

Kept apart from the control so that the extension works on a real
cluster without importing the lab.
"""

import json
import logging

from chaosk3s.errors import LabStateError, SpecError
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import LabSpec, load_spec

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


def ensure_lab(configuration: dict) -> bool:
    """Bring a lab up unless one runs; True if this call started it.

    A running lab of another K3s release, other nodes or other timings is
    refused rather than reused: the verdict would be about the wrong lab.
    """
    lab = Lab()
    spec = wanted_spec(configuration)  # a bad value is refused first
    if lab.state.exists():
        _check_running(lab.spec(), spec, configuration)
        return False
    logger.info("chaosk3s: starting the lab (K3s %s, %d nodes, %s timings)",
                spec.release.version, len(spec.nodes),
                spec.timings.profile)
    lab.up(spec, progress=lambda message: logger.info("lab: %s", message))
    return True


def _check_running(running: LabSpec, asked: LabSpec,
                   configuration: dict) -> None:
    wanted = configuration.get("lab_k3s_version")
    if wanted and wanted != running.release.version:
        raise LabStateError(
            f"a lab of K3s {running.release.version} is up, but the "
            f"experiment asks for {wanted}; run `chaosk3s lab down` first "
            f"or set lab_k3s_version to {running.release.version}")
    if configuration.get("lab_spec"):
        _check_same_nodes(running, asked)
    if lab_timings(configuration) and running.timings != asked.timings:
        raise LabStateError(
            f"a lab with {running.timings.profile} timings "
            f"{running.timings.values} is up, but the experiment asks for "
            f"{asked.timings.profile} timings {asked.timings.values}; run "
            f"`chaosk3s lab down` first")


def _shown(spec: LabSpec) -> str:
    return ", ".join(f"{n.name} ({n.role})" for n in spec.nodes)


def _check_same_nodes(running: LabSpec, asked: LabSpec) -> None:
    """A running lab of other nodes is refused rather than reused: the
    verdict would be about another topology than lab_spec's."""
    def nodes(spec: LabSpec) -> list[tuple]:
        return [(n.name, n.role, n.server) for n in spec.nodes]
    if nodes(running) != nodes(asked):
        raise LabStateError(
            f"a lab of other nodes is up ({_shown(running)}), but lab_spec "
            f"{asked.source} asks for {_shown(asked)}; run `chaosk3s lab "
            f"down` first")


def lab_facts() -> dict | None:
    """The running lab as the journal records it (release, behaviour
    family, timing profile and timings); None when no lab is up."""
    lab = Lab()
    if not lab.state.exists():
        return None
    spec = lab.spec()
    return {"release": spec.release.version,
            "family": spec.release.family,
            "timings_profile": spec.timings.profile,
            "timings": spec.timings.values}


def stop_lab() -> None:
    logger.info("chaosk3s: taking the lab down")
    Lab().down()
