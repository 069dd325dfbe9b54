"""The pieces of every report: markdown cells escaped, --format checked."""

from __future__ import annotations

import pytest

from dbops import formats
from dbops.errors import UsageError


def test_markdown_cells_are_escaped():
    table = formats.markdown_table(("a", "b"), [("x | y\nz", formats.md_code("select '|' ``"))])
    assert table.splitlines()[2] == "| x \\| y z | `select '\\|' ''` |"
    with pytest.raises(UsageError):
        formats.check_format("html")
