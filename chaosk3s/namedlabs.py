"""Lab names: what a name selects on this machine, so labs run side by side.

A lab name matches ``[a-z][a-z0-9]{0,7}``: short, because it goes into
interface names (at most 15 characters, IFNAMSIZ). The name ``default``
keeps the names a single lab has always used; any other name N gets
names of its own that no other name can produce:

=================  ====================  ============================
what               default               N
=================  ====================  ============================
namespaces         ``ck3s-<node>``       ``ck3sN-<node>``
bridge             ``ck3s-br0``          ``ck3sN-br``
host veths         ``ck3s-v<i>``         ``ck3sN-<i>``
operator account   ``ck3s-operator``     ``ck3sN-operator``
cluster name       ``chaosk3s-lab``      ``chaosk3s-lab-N``
node fault state   ``/run/chaosk3s``     ``/run/chaosk3s/lab.N``
target             ``lab``               ``lab:N``
=================  ====================  ============================

Lab names have no ``-``, so the first ``-`` after ``ck3s`` ends the name
(default's names have it right there): a name's namespaces and links are
exactly those that start with its prefix. The subnet and state directory
are chosen in chaosk3s.lab.placement and chaosk3s.lab.state.

Only the standard library: the extension imports this on real clusters.
"""

import os
import re
from dataclasses import dataclass

from chaosk3s.errors import SpecError

DEFAULT = "default"
ENV = "CHAOSK3S_LAB_NAME"
IFNAMSIZ = 15  # Linux interface names: at most 15 characters
_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_OWNED = re.compile(r"^ck3s(?:-|([a-z][a-z0-9]{0,7})-)")
LAB_TARGET = "lab"
FAULT_STATE = "/run/chaosk3s"  # chaosk3s.faults.partition's default


def check_lab_name(name: object) -> str:
    """name, if it is a lab name; else SpecError saying what to use."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"lab name {name!r} is not valid: use 1-8 lower-case letters "
            f"or digits starting with a letter (e.g. m1, a, lab2); it goes "
            f"into interface names, which are limited to 15 characters; "
            f"`{DEFAULT}` is the default lab")
    return name


def lab_name_from_env() -> str:
    """$CHAOSK3S_LAB_NAME (checked), else ``default``."""
    return check_lab_name(os.environ.get(ENV) or DEFAULT)


def configured_lab_name(configuration: dict | None) -> str:
    """An experiment's ``lab_name`` (checked; surrounding blanks are not
    forgiven), else $CHAOSK3S_LAB_NAME, else ``default``."""
    value = (configuration or {}).get("lab_name")
    if value is None or value == "":
        return lab_name_from_env()
    return check_lab_name(value)


@dataclass(frozen=True)
class LabNames:
    """Every machine-wide name of one lab."""

    name: str = DEFAULT

    def __post_init__(self) -> None:
        check_lab_name(self.name)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT

    @property
    def prefix(self) -> str:
        """Every namespace and host link of the lab starts with this."""
        return "ck3s-" if self.is_default else f"ck3s{self.name}-"

    def netns(self, node: str) -> str:
        return self.prefix + node

    @property
    def bridge(self) -> str:
        return "ck3s-br0" if self.is_default else f"{self.prefix}br"

    def veth(self, index: int) -> str:
        link = f"{self.prefix}{'v' if self.is_default else ''}{index}"
        if len(link) > IFNAMSIZ:
            raise SpecError(
                f"lab {self.name}: node #{index + 1} needs the host link "
                f"name {link}, longer than {IFNAMSIZ} characters; a lab "
                f"named {self.name} holds at most {self.max_nodes} nodes "
                f"(use a shorter name, or fewer nodes)")
        return link

    @property
    def max_nodes(self) -> int:
        """How many node namespaces fit the 15-character link names."""
        room = IFNAMSIZ - len(self.prefix) - (1 if self.is_default else 0)
        return 10 ** room

    @property
    def operator(self) -> str:
        return "ck3s-operator" if self.is_default else \
            f"{self.prefix}operator"

    @property
    def sudoers(self) -> str:
        """The operator's drop-in in /etc/sudoers.d (no dot: sudo skips
        files with one)."""
        return "chaosk3s-lab" if self.is_default else \
            f"chaosk3s-lab-{self.name}"

    @property
    def cluster(self) -> str:
        """The cluster name in the lab's kubeconfig and inventory."""
        return "chaosk3s-lab" if self.is_default else \
            f"chaosk3s-lab-{self.name}"

    @property
    def fault_state_dir(self) -> str:
        """Where node-side fault scripts keep timers: lab nodes share
        this machine's filesystem, and two labs have the same node names,
        so each lab but the default has a directory of its own (node
        names have no dot, so no node's directory is called lab.N)."""
        return FAULT_STATE if self.is_default else \
            f"{FAULT_STATE}/lab.{self.name}"

    @property
    def target(self) -> str:
        """The target string of runs on this lab (ledgers record it)."""
        return LAB_TARGET if self.is_default else f"{LAB_TARGET}:{self.name}"

    def owns(self, name: str) -> bool:
        """Whether a namespace or host link name is this lab's."""
        return name.startswith(self.prefix)


def owner(name: str) -> str | None:
    """The lab a namespace or host link name belongs to, or None."""
    match = _OWNED.match(name)
    if match is None:
        return None
    return match.group(1) or DEFAULT


def lab_of_target(target: str) -> str | None:
    """The lab name of a target string (``lab``, ``lab:N``), or None when
    target is an inventory path; SpecError for ``lab:`` + a bad name."""
    if target == LAB_TARGET:
        return DEFAULT
    if target.startswith(LAB_TARGET + ":"):
        return check_lab_name(target.split(":", 1)[1])
    return None


def is_lab_target(target: str) -> bool:
    return target == LAB_TARGET or target.startswith(LAB_TARGET + ":")
