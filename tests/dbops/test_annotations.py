"""GitHub annotations: workflow commands that parse as GitHub's (a strict parser, used by every report's tests)."""

from __future__ import annotations

import re

import pytest

from dbops.annotations import Annotation
from dbops.ui import UI

# -- a strict parser of GitHub's workflow commands ------------------------------------------------------------
# https://docs.github.com/actions/reference/workflow-commands-for-github-actions:
#   ::error file={name},line={line},endLine={endLine},title={title}::{message}
# values escaped as @actions/core's command.ts does: data % \r \n -> %25 %0D %0A; properties also : , -> %3A %2C

_COMMAND = re.compile(r"^::(?P<cmd>error|warning|notice)(?: (?P<props>[^:\r\n]+))?::(?P<msg>[^\r\n]*)$")
_PROP = re.compile(r"^(?P<key>file|line|endLine|col|endColumn|title)=(?P<value>[^,:\r\n]*)$")
_DATA_ESCAPES = {"%25": "%", "%0D": "\r", "%0A": "\n"}
_PROP_ESCAPES = {**_DATA_ESCAPES, "%3A": ":", "%2C": ","}


def _unescape(text: str, escapes: dict[str, str]) -> str:
    bad = re.search(r"%(?!" + "|".join(k[1:] for k in escapes) + ")", text)
    assert bad is None, f"a bare % in {text!r}"
    return re.sub(r"%(?:" + "|".join(k[1:] for k in escapes) + ")", lambda m: escapes[m.group(0)], text)


def parse_command(line: str) -> dict:
    m = _COMMAND.match(line)
    assert m, f"not a workflow command: {line!r}"
    props: dict[str, object] = {}
    for part in m["props"].split(",") if m["props"] else []:
        pm = _PROP.match(part)
        assert pm, f"bad property {part!r} in {line!r}"
        assert pm["key"] not in props, f"property {pm['key']} twice"
        value = _unescape(pm["value"], _PROP_ESCAPES)
        if pm["key"] in ("line", "endLine", "col", "endColumn"):
            assert value.isdigit() and int(value) >= 1, f"{pm['key']}={value!r}"
            value = int(value)
        props[pm["key"]] = value
    return {"level": m["cmd"], **props, "message": _unescape(m["msg"], _DATA_ESCAPES)}


def commands(text: str) -> list[dict]:
    return [parse_command(line) for line in text.splitlines() if line.startswith("::")]


class Recorder(UI):
    def __init__(self):
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        self.lines.append(text)


def test_the_parser_is_strict():
    for bad in ("::error file=a.py,line=x::m", "::error file=a:b.py::m", "::error file=a.py,line=1::50% done",
                "::error file=a.py,color=red::m", "::fatal file=a.py::m", "::error file=a.py::two\nlines"):
        with pytest.raises(AssertionError):
            parse_command(bad)
    assert parse_command("::notice::plain") == {"level": "notice", "message": "plain"}


def test_escaping_round_trips_through_the_strict_parser():
    a = Annotation("warning", "dir, with: odd%names/r.py", 7, "t: a, b %", "line 1\nline 2: 100% %0A literal\r")
    assert parse_command(a.command()) == {"level": "warning", "file": a.file, "line": 7, "title": a.title,
                                          "message": a.message}
