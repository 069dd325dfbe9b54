"""This repository's tasks: dbops' own (``from dbops.tasks import ns``, the ``dbops`` command's) and ``inv test``.
``inv --list`` shows them, ``inv --help TASK`` explains one.

dbops is installed here by ``pip install -e '.[dev]'``; a checkout without that install still runs ``inv``:
``backend/`` is then added at the end of ``sys.path``, after the project's own folders, so it never shadows them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke import Collection, task

try:
    from dbops.tasks import ns as toolkit
except ModuleNotFoundError as exc:  # a source checkout without the install
    if exc.name != "dbops":
        raise
    sys.path.append(str(Path(__file__).resolve().parent / "backend"))
    from dbops.tasks import ns as toolkit


@task(help={"k": "only tests matching this pytest -k expression", "x": "stop at the first failure"})
def test(c, k=None, x=False):
    """Run the whole test suite (real Postgres, real S3; Docker tests where an engine runs)."""
    args = ["-q"] + (["-k", k] if k else []) + (["-x"] if x else [])
    c.run(f"{sys.executable} -m pytest " + " ".join(shlex.quote(a) for a in args), pty=False)


#: dbops' tasks (the `dbops` command's) and this repository's test suite
ns = Collection(*toolkit.tasks.values(), test)
