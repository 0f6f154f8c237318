"""The Monitoring Plugins range syntax of `check -w/-c`: each form, and properties over any range."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfleet.core.errors import UsageError
from vfleet.core.ranges import Range, above, parse, render

PROBES = (-1e9, -20.0, -0.5, 0.0, 5.0, 10.0, 10.5, 15.0, 20.0, 20.5, 1e9)


@pytest.mark.parametrize(
    ("text", "alerting"),
    [
        ("10", {-1e9, -20.0, -0.5, 10.5, 15.0, 20.0, 20.5, 1e9}),  # outside 0..10
        ("10:", {-1e9, -20.0, -0.5, 0.0, 5.0}),  # below 10
        ("~:10", {10.5, 15.0, 20.0, 20.5, 1e9}),  # above 10
        ("10:20", {-1e9, -20.0, -0.5, 0.0, 5.0, 20.5, 1e9}),  # outside 10..20
        ("@10:20", {10.0, 10.5, 15.0, 20.0}),  # inside 10..20, ends included
        (":10", {-1e9, -20.0, -0.5, 10.5, 15.0, 20.0, 20.5, 1e9}),  # an empty start is 0, as in the C library
        ("@~:0", {-1e9, -20.0, -0.5, 0.0}),
        ("-20:-0.5", {0.0, 5.0, 10.0, 10.5, 15.0, 20.0, 20.5, 1e9, -1e9}),
        ("1e1", {-1e9, -20.0, -0.5, 10.5, 15.0, 20.0, 20.5, 1e9}),
    ],
)
def test_each_form_alerts_where_the_guidelines_say(text: str, alerting: set[float]) -> None:
    r = parse(text)
    assert {v for v in PROBES if r.alerts(v)} == alerting
    assert str(r) == text  # perfdata repeats the range as given


@pytest.mark.parametrize("text", ["", " ", "@", "x", "10:x", "20:10", "@20:10", "1:2:3", "inf", "nan", "1e999", "~",
                                  "10 :20", "--1", "@@1", "~5"])
def test_garbage_is_a_usage_error_naming_the_text(text: str) -> None:
    with pytest.raises(UsageError, match="bad threshold range"):
        parse(text)


def test_console_thresholds_alert_at_or_above() -> None:
    r = above(80.0)
    assert r.alerts(80.0) and r.alerts(1e9) and not r.alerts(79.999) and not r.alerts(-5)
    assert str(r) == "~:80"


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    a, b = sorted((draw(finite), draw(finite)))
    start = draw(st.sampled_from([a, -math.inf, 0.0])) if a <= 0 else draw(st.sampled_from([a, -math.inf]))
    end = draw(st.sampled_from([b, math.inf]))
    if start > end:
        start = -math.inf
    return Range(start, end, draw(st.booleans()))


@given(ranges(), finite)
def test_rendering_parses_back_to_the_same_range(r: Range, value: float) -> None:
    back = parse(render(r))
    assert (back.start, back.end, back.inside) == (r.start, r.end, r.inside)
    assert back.alerts(value) == r.alerts(value)


@given(ranges(), finite)
def test_alerts_is_outside_or_inside_with_ends_included(r: Range, value: float) -> None:
    inside = r.start <= value <= r.end
    assert r.alerts(value) is (inside if r.inside else not inside)
    if math.isfinite(r.start):
        assert r.alerts(r.start) is r.inside  # an end belongs to the range
    if math.isfinite(r.end):
        assert r.alerts(r.end) is r.inside


@given(st.text(max_size=12))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        r = parse(text)
    except UsageError:
        return
    assert r.start <= r.end and not math.isnan(r.start) and not math.isnan(r.end)
