"""The emulated K3s node process: one asyncio process per lab node.

See docs/lab-internals.md for how its parts fit together.
"""
