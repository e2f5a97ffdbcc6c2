"""Starting and stopping the lab for an experiment whose target is `lab`.

Kept apart from the control so that the extension works on a real
cluster without importing the lab.
"""

import logging

from chaosk3s.errors import LabStateError
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import load_spec

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
        return False
    spec = load_spec(spec_file, wanted)  # a file, or inline in it
    logger.info("chaosk3s: starting the lab (K3s %s, %d nodes)",
                spec.release.version, len(spec.nodes))
    lab.up(spec, progress=lambda message: logger.info("lab: %s", message))
    return True


def stop_lab() -> None:
    logger.info("chaosk3s: taking the lab down")
    Lab().down()
