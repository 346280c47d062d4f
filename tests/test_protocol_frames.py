"""The protocol's frame-number helpers: the one definition the daemon, the engine and the plugins import."""

from __future__ import annotations

import pytest

from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range, frame_runs, runs_text


@pytest.mark.parametrize("frames, runs", [
    ([], []),
    ([5], [[5, 5]]),
    ([1001, 1002, 1003, 1010, 1020, 1021], [[1001, 1003], [1010, 1010], [1020, 1021]]),
    ([7, 3, 2, 1, 9, 10], [[1, 3], [7, 7], [9, 10]]),   # any order
    ([4, 4, 5, 5, 5], [[4, 5]]),                         # duplicates are one frame
    ({0, 1, 2}, [[0, 2]]),                               # any iterable (the journal hands a dict/set)
])
def test_frame_runs(frames, runs):
    assert frame_runs(frames) == runs


def test_runs_text_names_runs_and_stops_at_the_limit():
    assert runs_text([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert runs_text(range(0, 20, 2), limit=3) == "0, 2, 4, …"
    assert runs_text([1, 3], limit=2) == "1, 3"


def test_keyframes_inside_the_range_pass():
    check_keyframes_in_range([], 10, 20)
    check_keyframes_in_range([10, 15, 20], 10, 20)  # both ends are inside


def test_keyframes_outside_the_range_are_all_named_in_one_message():
    with pytest.raises(KeyframeOutsideRange) as exc:
        check_keyframes_in_range([25, 9, 12, 9], 10, 20)
    assert str(exc.value) == "keyframe(s) 9, 25 outside the frame range 10-20"
    assert isinstance(exc.value, ValueError)


def test_the_message_names_what_the_frames_are():
    with pytest.raises(KeyframeOutsideRange) as exc:
        check_keyframes_in_range([40], 11, 15, what="reference frame")
    assert str(exc.value) == "reference frame 40 outside the frame range 11-15"
