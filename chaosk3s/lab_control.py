"""Starting and stopping the lab for an experiment whose target is `lab`.

Kept apart from the control so that the extension works on a real
cluster without importing the lab.
"""

import logging
from dataclasses import asdict

from chaosk3s.errors import LabStateError
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import LabSpec, Timings, load_spec

logger = logging.getLogger("chaostoolkit")


def ensure_lab(configuration: dict) -> bool:
    """Bring a lab up unless one runs; True if this call started it.

    A running lab of another K3s release is refused rather than reused:
    the verdict would be about the wrong release.
    """
    lab = Lab()
    wanted = configuration.get("lab_k3s_version")
    spec_file = configuration.get("lab_spec") or None
    if lab.state.exists():
        running = lab.spec().release.version
        if wanted and wanted != running:
            raise LabStateError(
                f"a lab of K3s {running} is up, but the experiment asks for "
                f"{wanted}; run `chaosk3s lab down` first or set "
                f"lab_k3s_version to {running}")
        if spec_file is not None:
            _check_same_nodes(lab.spec(), load_spec(spec_file, wanted))
        return False
    spec = load_spec(spec_file, wanted)  # a file, or inline in it
    logger.info("chaosk3s: starting the lab (K3s %s, %d nodes)",
                spec.release.version, len(spec.nodes))
    lab.up(spec, progress=lambda message: logger.info("lab: %s", message))
    return True


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
            "timings_profile": "lab" if spec.timings == Timings()
            else "custom",
            "timings": asdict(spec.timings)}


def stop_lab() -> None:
    logger.info("chaosk3s: taking the lab down")
    Lab().down()
