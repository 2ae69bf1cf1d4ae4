"""How numbers, times and filters read: the small pure pieces of the dashboard."""

from __future__ import annotations

import pytest

from dashboard._charts import value_scale
from dashboard._format import (
    byte_size,
    bytes_delta,
    count_items,
    duration,
    epoch_ms,
    factor,
    json_preview,
    metric_title,
    metric_value,
    nodeid_breaks,
    number,
    offset,
    percent,
    safe_url,
    tag_value,
    traceback_html,
    traceback_text,
    utc,
)
from dashboard._params import BadFilter, QueryReader, href


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.0, "0 µs"),
        (0.00042, "420 µs"),
        (0.0042, "4.2 ms"),
        (0.25, "250 ms"),
        (1.5, "1.50 s"),
        (125, "2 min 5 s"),
        (7300, "2 h 1 min"),
    ],
)
def test_durations_carry_their_unit(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_numbers_rates_factors_and_bytes() -> None:
    assert percent(0.875) == "87.5 %"
    assert percent(None) == "—"
    assert number(1234567) == "1,234,567"
    assert number(44.75) == "44.75"
    assert number(3.0) == "3"
    assert factor(1.8) == "\N{MULTIPLICATION SIGN}1.80"
    assert bytes_delta(1536) == "+1.5 KiB"
    assert bytes_delta(-10) == "-10 B"


def test_times_are_utc_text() -> None:
    assert utc("2027-01-15T08:00:00.000000Z") == "2027-01-15 08:00:00 UTC"
    assert utc("2027-01-15T10:00:00+02:00") == "2027-01-15 08:00:00 UTC"
    assert utc(1_800_000_000.0) == "2027-01-15 08:00:00 UTC"
    assert utc(None) == "—"
    assert utc("not a time") == "not a time"
    assert epoch_ms("1970-01-01T00:00:01Z") == 1000


def test_only_http_urls_are_links() -> None:
    assert safe_url("https://ci.example/1") == "https://ci.example/1"
    assert safe_url("http://ci.example/1") == "http://ci.example/1"
    for bad in ("javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "", None):
        assert safe_url(bad) == ""


def test_counts_read_main_outcomes_first_and_previews_are_cut() -> None:
    counts = {"subtests passed": 3, "skipped": 1, "passed": 5, "failed": 2}
    assert [name for name, _ in count_items(counts)] == [
        "passed",
        "failed",
        "skipped",
        "subtests passed",
    ]
    assert json_preview({"a": "x" * 200}, 20) == '{"a": "' + "x" * 12 + "…"
    assert json_preview({"ü": 1}) == '{"ü": 1}'


def test_query_reader_blank_means_unset_and_bad_values_say_why() -> None:
    query = QueryReader({"a": "", "n": "7", "x": "seven", "c": "p95", "f": "inf"})
    assert query.text("a") is None
    assert query.integer("n", 1, lo=1, hi=10) == 7
    assert query.integer("missing", 3, lo=1, hi=10) == 3
    assert query.optional_integer("a", lo=1, hi=10) is None
    assert query.choice("c", ("p50", "p95")) == "p95"
    with pytest.raises(BadFilter, match="x must be a whole number"):
        query.integer("x", 1, lo=1, hi=10)
    with pytest.raises(BadFilter, match="n must be between 1 and 5"):
        query.integer("n", 1, lo=1, hi=5)
    with pytest.raises(BadFilter, match="f must be between"):
        query.number("f", 1.0, lo=0, hi=10)
    with pytest.raises(BadFilter, match="c must be one of p50, max"):
        query.choice("c", ("p50", "max"))


def test_links_keep_set_parameters_only() -> None:
    assert href("/runs", {"project": "a b", "branch": None, "outcome": "", "page": 2}) == (
        "/runs?project=a+b&page=2"
    )
    assert href("/runs", {}) == "/runs"


def test_tracebacks_read_as_lines_whichever_shape_they_come_in() -> None:
    # the seed's client: traceback.format_exception, each part ending in a newline
    assert (
        traceback_text(["Traceback:\n", "  f()\n", "Error: x\n"]) == "Traceback:\n  f()\nError: x\n"
    )
    # a test's traceback, split into lines by the events view
    assert traceback_text(["def test():", ">   assert 0", "E   assert 0"]) == (
        "def test():\n>   assert 0\nE   assert 0"
    )
    assert traceback_text("already text\n") == "already text\n"
    assert traceback_text(["one line"]) == "one line"
    assert traceback_text({"odd": 1}) == '{"odd": 1}'


def test_offset_is_the_time_since_the_run_started() -> None:
    assert offset("2026-01-01T00:01:02.500000", "2026-01-01T00:00:00") == "+" + duration(62.5)
    assert offset("2026-01-01T00:00:00", "2026-01-01T00:00:01") == "+" + duration(0.0)
    assert offset(None, "2026-01-01T00:00:00") == offset("soon", "2026-01-01T00:00:00")


def test_metric_values_read_in_their_stored_unit() -> None:
    # DataCat's own per-test metrics are stored with "s" and "bytes"
    assert metric_value(0.0332, "s") == duration(0.0332) == "33 ms"
    assert metric_value(1_572_864.0, "bytes") == byte_size(1_572_864) == "1.5 MiB"
    assert metric_value(-2048.0, "bytes") == "-2.0 KiB"
    assert metric_value(250.0, "ms") == duration(0.25) == "250 ms"
    assert metric_value(59.52, "fps") == "59.52 fps"
    assert metric_value(59.52) == number(59.52)
    assert metric_value(None, "s") == number(None)
    assert metric_title("test_rss_delta", "bytes") == "test_rss_delta (bytes)"
    assert metric_title("fps") == "fps"


def test_rates_read_in_their_unit_per_second() -> None:
    assert metric_value(20.0, "requests/s") == "20 requests/s"
    assert metric_value(1_572_864.0, "bytes/s") == "1.5 MiB/s"
    assert metric_value(0.25, "s/s") == "250 ms/s"
    assert metric_value(10.0, "/s") == "10/s"
    assert metric_value(None, "/s") == number(None)
    assert value_scale("bytes/s", [3 * 1_048_576.0]) == ("MiB/s", 1 / 1_048_576)
    assert value_scale("requests/s", [5.0]) == ("requests/s", 1.0)
    assert value_scale("/s", [5.0]) == ("/s", 1.0)


def test_node_ids_break_between_their_parts_never_inside_a_name() -> None:
    assert str(nodeid_breaks("tests/unit/test_x.py::TestA::test_b[a-1]")) == (
        "tests/<wbr>unit/<wbr>test_x.py::<wbr>TestA::<wbr>test_b<wbr>[a-1]"
    )
    # escaped, text intact
    assert str(nodeid_breaks('t.py::test[<b>&"]')) == "t.py::<wbr>test<wbr>[&lt;b&gt;&amp;&#34;]"
    assert str(nodeid_breaks("plain_name")) == "plain_name"
    assert str(nodeid_breaks(None)) == ""
    # a part too long to fit a table cell is cut in pieces (a 250-character parameter id)
    long = "p" * 100
    assert str(nodeid_breaks(f"t.py::test[{long}]")) == (
        f"t.py::<wbr>test<wbr>[{long[:47]}<wbr>{long[47:95]}<wbr>{long[95:]}]"
    )


def test_a_traceback_marks_pytest_s_explanation_and_the_failing_line() -> None:
    text = "    def test():\n>       assert f() == <2>\nE       assert 1 == 2\nE\n\nt.py:2: Err"
    html = str(traceback_html(text))
    assert html == (
        "    def test():\n"
        '<span class="tb-here">&gt;       assert f() == &lt;2&gt;\n</span>'
        '<span class="tb-e">E       assert 1 == 2\n</span>'
        '<span class="tb-e">E\n</span>'
        "\nt.py:2: Err"
    )
    # a line that merely starts with E is no explanation
    assert "tb-e" not in str(traceback_html("Exception: boom\nError"))
    assert str(traceback_html(None)) == ""


def test_tag_values() -> None:
    tags = ["nodeid=t.py::test_a[x=1]", "outcome=passed"]
    assert tag_value(tags, "nodeid") == "t.py::test_a[x=1]"
    assert tag_value(tags, "outcome") == "passed"
    assert tag_value(tags, "worker") is None
