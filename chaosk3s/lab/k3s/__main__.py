"""Entry point of a lab node's k3s service (started by chaosk3s.lab.procs)."""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.node import run
from chaosk3s.lab.state import LabState


def main() -> int:
    parser = argparse.ArgumentParser(prog="chaosk3s.lab.k3s")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s %(message)s",
        datefmt="%H:%M:%S")
    state = LabState(Path(args.state_dir))
    spec, _phase = state.load()
    ctx = NodeContext(spec=spec, node=spec.node(args.node), state=state,
                      log=logging.getLogger(f"k3s.{args.node}"))
    return asyncio.run(run(ctx))


if __name__ == "__main__":
    sys.exit(main())
