"""Ready flaps and the longest NotReady span from a readiness timeline
(chaosk3s.flaps, behind probes.ready_flaps)."""

from chaosk3s.flaps import flaps


def at(seconds: float) -> str:
    return f"2026-11-29T10:00:{seconds:06.3f}+00:00"


def entry(node: str, seconds: float, ready: str) -> dict:
    return {"node": node, "at": at(seconds), "ready": ready}


def test_flaps_and_longest_span_per_node():
    timeline = [entry("a", 0, "True"), entry("b", 0, "True"),
                entry("a", 5, "Unknown"), entry("a", 7, "False"),
                entry("a", 9, "True"),  # one span of 4 s: Unknown, False
                entry("a", 20, "False"), entry("a", 21, "True"),
                entry("c", 0, "True")]
    got = flaps(timeline, {"a", "b"}, at(0), at(30))
    assert got["nodes"] == {
        "a": {"flaps": 2, "longest_not_ready_seconds": 4.0,
              "not_ready_at_end": False},
        "b": {"flaps": 0, "longest_not_ready_seconds": 0.0,
              "not_ready_at_end": False}}
    assert got["max_flaps"] == 2 and got["longest_not_ready_seconds"] == 4.0
    assert got["window_seconds"] == 30.0


def test_a_node_down_from_the_start_is_a_span_not_a_flap():
    # seen NotReady when the watch listed it, before the window opened
    timeline = [entry("a", 0, "False"), entry("a", 12, "True"),
                entry("a", 14, "Unknown")]
    got = flaps(timeline, {"a"}, at(2), at(20))["nodes"]["a"]
    assert got == {"flaps": 1, "longest_not_ready_seconds": 10.0,
                   "not_ready_at_end": True}  # 2..12; then 14..20 (6 s)


def test_a_span_still_open_counts_to_the_end_of_the_window():
    timeline = [entry("a", 0, "True"), entry("a", 10, "False")]
    got = flaps(timeline, {"a"}, at(0), at(25))["nodes"]["a"]
    assert got == {"flaps": 1, "longest_not_ready_seconds": 15.0,
                   "not_ready_at_end": True}


def test_within_wants_every_figure_measured_and_under_its_limit():
    from chaosk3s.tolerances import within
    seen = {"max_flaps": 0, "max_median_seconds": 0.06, "failed": 0}
    assert within(seen, {"max_flaps": 0, "max_median_seconds": "1.0"})
    assert not within(seen, {"max_median_seconds": 0.05})
    assert not within({"max_median_seconds": None}, {
        "max_median_seconds": 1})  # nothing answered: no proof
    assert not within({"failed": True}, {"failed": 1})
    assert not within([], {"failed": 0}) and within({}, {})
