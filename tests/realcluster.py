"""The experiment variables README advises for a real cluster (and for the
lab with ``lab_timings: k3s``), per experiment and partition mode.

The equivalence tier runs with these; tests/unit/test_timings.py checks
that they keep every ordering that decides a verdict and that README
states the same numbers.
"""

REAL_CLUSTER = {
    ("etcd_only_partition", "drop"): {"partition_seconds": 90,
                                      "recovery_timeout": 120},
    ("etcd_only_partition", "reject"): {"partition_seconds": 60,
                                        "recovery_timeout": 120},
    ("node_restart", None): {"observe_seconds": 60, "recovery_timeout": 120},
    ("control_plane_outage", None): {"first_outage_seconds": 40,
                                     "observe_seconds": 60,
                                     "recovery_timeout": 120},
}
# The longest a black-holed SYN waits between retransmissions before the
# last one (Linux: net.ipv4.tcp_syn_retries = 6, doubling from 1 s).
SYN_RETRY_GAP = 64.0
