"""Shared test helpers: running the chaosk3s CLI as users do."""

import os
import subprocess
import sys

import pytest


def run_cli(*args: str, env: dict | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    """Run `chaosk3s ARGS` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "chaosk3s.cli", *args], capture_output=True,
        check=False, text=True, timeout=timeout,
        env={**os.environ, **(env or {})})


def pytest_collection_modifyitems(config, items):
    """Lab-tier tests need root; skip them (visibly) elsewhere."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="lab tier needs root")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
