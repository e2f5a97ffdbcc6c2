"""One error tree for chaosk3s.

Every error says what is wrong and what to do about it; the CLI prints the
message and exits non-zero without a traceback.
"""


class ChaosK3sError(Exception):
    """Base of every error chaosk3s raises on purpose."""


class SpecError(ChaosK3sError):
    """A lab spec, inventory or plan is invalid; nothing was changed."""


class EnvironmentProblem(ChaosK3sError):
    """The machine lacks something (root, a binary, a free subnet)."""


class LabStateError(ChaosK3sError):
    """The lab is not in the state the command needs (up, down, ...)."""


class CommandFailed(ChaosK3sError):
    """A command on a node failed; names the node, command and stderr."""

    def __init__(self, node: str, command: list[str] | str, code: int,
                 stderr: str):
        self.node = node
        self.command = command
        self.code = code
        self.stderr = stderr
        shown = command if isinstance(command, str) else " ".join(command)
        super().__init__(
            f"on node {node}: `{shown}` exited {code}: "
            f"{stderr.strip() or '(no stderr)'}")
