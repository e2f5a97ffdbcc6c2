"""Missing host binaries are named with the package that provides them."""

import pytest

from chaosk3s.errors import EnvironmentProblem
from chaosk3s.lab.shell import PACKAGES, require


def test_missing_binary_names_its_package(monkeypatch):
    monkeypatch.setitem(PACKAGES, "no-such-tool-xyz", "some-package")
    with pytest.raises(EnvironmentProblem,
                       match="apt-get install -y some-package"):
        require("no-such-tool-xyz")
