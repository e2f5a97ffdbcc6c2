"""API latency timed on the node (chaosk3s.latency): the timing script
runs in a real sh here; the probe runs it over the node's transport."""

import subprocess

from chaosk3s.latency import parse_timings, summarize, timing_script


def run(command: str, requests: int) -> str:
    return subprocess.run(["sh", "-c", timing_script(command, requests)],
                          capture_output=True, text=True, timeout=30,
                          check=True).stdout


def test_each_run_is_timed_by_the_node_and_failures_counted():
    seconds, failed = parse_timings(run("sleep 0.2", 2))
    assert failed == 0 and len(seconds) == 2
    assert all(0.19 <= s < 0.6 for s in seconds), seconds
    assert parse_timings(run("exit 7", 3)) == ([], 3)


def test_output_and_noise_of_the_command_stay_out_of_the_figures():
    seconds, failed = parse_timings(run("echo 12 34; echo oops >&2", 2))
    assert failed == 0 and len(seconds) == 2


def test_summary_over_nodes():
    got = summarize({
        "b": {"seconds": [0.2, 0.4], "median_seconds": 0.3,
              "max_seconds": 0.4, "failed": 0},
        "a": {"seconds": [], "median_seconds": None, "max_seconds": None,
              "failed": 2, "error": "unreachable"}})
    assert list(got["nodes"]) == ["a", "b"]
    assert got["max_median_seconds"] == 0.3 and got["failed"] == 2
