"""One error tree for chaosk3s.

Every error says what is wrong and what to do about it; the CLI prints the
message and exits non-zero without a traceback. Every class chaosk3s
raises on purpose is defined here (tests/unit/test_errors.py keeps it so):

    ChaosK3sError
    ├── SpecError               bad input (inventory, plan, spec, argument);
    │   │                       nothing was changed
    │   ├── ArgumentError       an activity argument (chaosk3s.arguments)
    │   ├── Refused             what `chaos run` would refuse (plan, one
    │   │                       line per problem)
    │   ├── MatrixError         a release matrix refused before anything
    │   │                       started (chaosk3s.matrix; one line each)
    │   └── NotConsented        the cluster has not opted in to chaos, is
    │                           not the inventory's, or its abort switch is
    │                           set (chaosk3s.consent)
    ├── EnvironmentProblem      the machine lacks something (root, a binary)
    ├── LabStateError           the lab is not in the state a command needs
    ├── CommandFailed           a command on a node failed (node, command,
    │   │                       exit code, stderr)
    │   └── NodeUnreachable     the transport could not reach the node
    ├── FaultError              a fault step failed on some nodes (.outcomes)
    ├── EffectNotSeen           a node action did not show its effect on
    │                           the node (node, action, expected, seen)
    ├── LedgerUnreadable        a run's ledger cannot be parsed (set aside)
    ├── KubeError               the Kubernetes API could not do what was asked
    │   ├── KubeUnavailable     no API server of the target answered
    │   └── KubeRejected        an API server answered with an error status
    │                           (.status: 404, 409, 403...)
    ├── Aborted                 the cluster's abort switch stopped the run
    ├── LockHeld                another game day holds the cluster's lock
    ├── LockLost                the game-day Lease was taken over mid-run
    ├── JournalError            a file is not a readable journal
    ├── OutputError             a report output (metrics) could not be
    │                           written or pushed
    └── EtcdError               the lab's etcd client (inside lab processes)
        ├── EtcdUnavailable     no member answered with quorum
        ├── KeyExists           create() found the key
        ├── RevisionConflict    the key's revision moved
        └── WatchCompacted      the watch's start revision is gone

Lower layers' errors are mapped where they enter chaosk3s, with the cause
chained (``raise ... from exc``): the Kubernetes client's ApiException,
ConfigException and urllib3 errors in chaosk3s.kube; subprocess failures
in chaosk3s.transports; YAML, JSON and schema errors in the loaders.

Outside the tree, on purpose: three exceptions of the lab's emulated K3s
that model K3s's own wire failures and never leave a lab process (the
emulated API server's metav1 Status answer,
``lab.k3s.apiserver.resources.ApiError``; the emulated kubelet's failed
call, ``lab.k3s.kubelet.APIError``; the load balancer's
``lab.k3s.lb_servers.AllServersFailed``, a ConnectionError as in K3s).

Not errors but interruptions: what a signal's handler raises in the main
thread, at whatever line it runs (INTERRUPTIONS). Chaos Toolkit's SIGTERM
handler raises InterruptExecution, an Exception: a best-effort ``except
Exception`` that catches it would swallow the SIGTERM and let the
activity go on, so such blocks let INTERRUPTIONS through (or keep them
for the end of a heal walk, chaosk3s.faults.session).
"""

from chaoslib.exceptions import InterruptExecution

# Ctrl-C, the graceful exit (SIGUSR1: the abort switch) and SIGTERM.
INTERRUPTIONS = (KeyboardInterrupt, SystemExit, InterruptExecution)


class ChaosK3sError(Exception):
    """Base of every error chaosk3s raises on purpose."""


class SpecError(ChaosK3sError):
    """A lab spec, inventory or plan is invalid; nothing was changed."""


class ArgumentError(SpecError):
    """An activity argument has a value the activity cannot use."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class Refused(SpecError):
    """What `chaos run` would refuse: one line per problem."""


class MatrixError(SpecError):
    """`chaosk3s matrix` refused before anything started (releases,
    expectations, variables, experiments): one line per problem."""


class NotConsented(SpecError):
    """The cluster has not agreed to chaos (no consent record, another
    cluster than the inventory's, or its abort switch set); nothing was
    changed."""


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


class NodeUnreachable(CommandFailed):
    """The transport could not reach the node at all."""

    def __init__(self, node: str, target: str, detail: str):
        self.target = target
        CommandFailed.__init__(self, node, f"connect to {target}", 255,
                               detail)


class FaultError(ChaosK3sError):
    """A fault step failed on some nodes; .outcomes has every node's."""

    def __init__(self, message: str, outcomes: list):
        super().__init__(message)
        self.outcomes = outcomes


class EffectNotSeen(ChaosK3sError):
    """A node action did not show its effect on the node."""

    def __init__(self, node: str, action: str, command: str, expected: str,
                 seen: str, evidence: dict | None = None):
        self.node, self.action, self.command = node, action, command
        self.expected, self.seen = expected, seen
        self.evidence = evidence or {}
        super().__init__(
            f"{action} on node {node} did not take effect: `{command}`; "
            f"expected {expected}; seen {seen}")


class LedgerUnreadable(ChaosK3sError):
    """A ledger file exists but cannot be parsed; it was moved aside."""

    def __init__(self, path, aside, reason: str):
        self.path, self.aside = path, aside
        where = f"moved to {aside}" if aside else "left in place"
        super().__init__(
            f"ledger {path} cannot be read ({reason}); {where}. Faults it "
            f"recorded may still be active: run `chaosk3s cleanup`, which "
            f"also finds chaosk3s's rules and timers on the nodes")


class KubeError(ChaosK3sError):
    """The Kubernetes API could not do what was asked."""


class KubeUnavailable(KubeError):
    """No API server of the target answered."""


class KubeRejected(KubeError):
    """An API server answered with an error status (HTTP 4xx): the
    object is not there, changed meanwhile, or the request is not
    allowed. `status` is the HTTP code, `reason` the API's reason."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"the API answered {status} {reason}: {message}")
        self.status = status
        self.reason = reason


class Aborted(ChaosK3sError):
    """The cluster's abort switch was set while the run went on."""


class LockHeld(ChaosK3sError):
    """Another game day holds the lock; nothing was run."""


class LockLost(ChaosK3sError):
    """Someone else took the lease while this game day ran."""


class JournalError(ChaosK3sError):
    """A file is not a readable Chaos Toolkit journal.

    not_journal: the file is sound JSON of another kind (an experiment, a
    plan), which an index skips quietly; a broken journal it reports.
    """

    def __init__(self, message: str, not_journal: bool = False):
        super().__init__(message)
        self.not_journal = not_journal


class OutputError(ChaosK3sError):
    """A report output could not be written or sent (a Pushgateway that
    refused or did not answer)."""


class EtcdError(ChaosK3sError):
    """etcd refused a request (bad request, compaction, ...)."""


class EtcdUnavailable(EtcdError):
    """No member answered with quorum: every endpoint failed."""


class KeyExists(EtcdError):
    """create() found the key already present."""


class RevisionConflict(EtcdError):
    """The key's mod_revision was not the expected one (or it is gone)."""


class WatchCompacted(EtcdError):
    """The watch's start revision was compacted away."""

    def __init__(self, compact_revision: int):
        self.compact_revision = compact_revision
        super().__init__(f"etcdserver: mvcc: required revision has been "
                         f"compacted (compact revision {compact_revision})")


_OWN = "chaosk3s.errors."


def names_a_refusal(error: str) -> bool:
    """Whether an activity's recorded error ("chaosk3s.errors.Name: ...",
    the exception's last line as the journal keeps it) is a SpecError:
    the activity refused what it was asked and changed nothing (a
    downgrade, a quorum guard, a blast-radius cap), so the experiment did
    not run as written, whatever the steady state says after it."""
    name = str(error).split(":", 1)[0].strip()
    if not name.startswith(_OWN):
        return False
    found = globals().get(name[len(_OWN):])
    return isinstance(found, type) and issubclass(found, SpecError)
