"""dbops.units: the one way sizes, rates, durations and excerpts are written for people."""

from __future__ import annotations

from dbops.units import MiB, duration, human_size, millis, rate, truncate


def test_sizes_and_rates():
    assert [human_size(n) for n in (512, 1536, 5 * MiB, 3 * 1024 * MiB, 2 * 1024**4)] == [
        "512 B", "1.5 KiB", "5.0 MiB", "3.0 GiB", "2.0 TiB"]
    assert rate(10 * MiB, 2.0) == "10.0 MiB at 5.0 MiB/s"
    assert rate(MiB, 0) == "1.0 MiB at 1,000,000.0 MiB/s"  # no division by zero: a microsecond at least


def test_durations():
    assert [duration(s) for s in (None, 0.0004, 0.85, 1, 2.314)] == ["-", "0 ms", "850 ms", "1.00 s", "2.31 s"]
    assert [millis(v) for v in (None, 12.4, 0)] == ["-", "12", "0"]


def test_truncate_keeps_one_line_within_the_width():
    assert truncate("ALTER TABLE users\n   ADD COLUMN phone text", 80) == "ALTER TABLE users ADD COLUMN phone text"
    cut = truncate("x" * 50, 10)
    assert cut == "x" * 9 + "…" and len(cut) == 10
    assert truncate(None, 5) == "" and truncate("abcde", 5) == "abcde"
