"""Entry point of a lab node's k3s service (started by chaosk3s.lab.procs)."""

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.node import run
from chaosk3s.lab.state import LabState


def log_format() -> logging.Formatter:
    """The node's log lines start with a dated UTC stamp, as journald
    gives a real node's: the report's log excerpts find the lines around
    a transition by it (chaosk3s.lab.nodelogs reads them)."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    return formatter


def main() -> int:
    parser = argparse.ArgumentParser(prog="chaosk3s.lab.k3s")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(log_format())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    state = LabState(Path(args.state_dir))
    spec, _phase = state.load()
    ctx = NodeContext(spec=spec, node=spec.node(args.node), state=state,
                      log=logging.getLogger(f"k3s.{args.node}"))
    return asyncio.run(run(ctx))


if __name__ == "__main__":
    sys.exit(main())
