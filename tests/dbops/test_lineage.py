"""The schema rule of the health contract (dbops.lineage, which the example app applies too) and the recorded
lineage."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from deploy_fixtures import ADD_PHONE, BASE, add_revision

from dbops import lineage
from dbops.migrations import Project

#: a1 <- a2 <- a3 (main line); a2 <- x1 (a branch); m1 merges a3 and x1
GRAPH = {"a1": (), "a2": ("a1",), "a3": ("a2",), "x1": ("a2",), "m1": ("a3", "x1")}

CASES = [
    (["a3"], ["a3"], GRAPH, "at head"),
    (["a3"], ["m1"], GRAPH, "ahead"),  # a descendant through a merge
    (["a2"], ["a3", "x1"], GRAPH, "ahead"),  # two database heads, both past the code's
    (["a3"], ["a2"], GRAPH, "behind"),
    (["a3"], [], GRAPH, "behind"),  # nothing applied
    (["a3", "x1"], ["a3"], GRAPH, "behind"),  # one of the code's heads missing
    (["a3"], ["x1"], GRAPH, "unknown"),  # a sibling line: neither behind nor ahead
    (["a3"], ["zz"], GRAPH, "unknown"),  # a revision nobody recorded
    (["a3"], ["a3", "zz"], GRAPH, "ahead"),  # every code head applied; an extra branch the code does not know
]


@pytest.mark.parametrize("heads,current,parents,expected", CASES)
def test_the_rule(heads, current, parents, expected):
    found = lineage.classify(heads, current, parents)
    assert found.state == expected
    assert found.healthy == (expected in ("at head", "ahead"))


def test_the_deploy_records_lineage_once_and_an_older_project_reads_it(project, tmp_path, fresh_db):
    from project_copy import copy_project

    newer = copy_project(tmp_path / "newer")
    add_revision(newer, "b2", BASE, *ADD_PHONE)
    engine = sa.create_engine(fresh_db)
    try:
        with engine.connect() as conn:
            Project(newer / "alembic.ini").upgrade(conn, "head")
            conn.commit()
            old = Project(project / "alembic.ini")
            assert lineage.state(conn, old, ["b2"]).state == "unknown"
            assert lineage.record(conn, Project(newer / "alembic.ini")) == 2
            assert lineage.record(conn, Project(newer / "alembic.ini")) == 0  # rows are only ever added
            assert lineage.recorded(conn) == ({BASE: (), "b2": (BASE,)}, None)
            found = lineage.state(conn, old, ["b2"])
            assert found.state == "ahead" and f"descendant of this code's head {BASE}" in found.detail
            assert lineage.state(conn, Project(newer / "alembic.ini"), [BASE]).state == "behind"
    finally:
        engine.dispose()


def test_a_role_that_cannot_read_the_lineage_gets_unknown_and_the_grants_that_fix_it(project, tmp_path, fresh_db):
    from project_copy import copy_project

    newer = copy_project(tmp_path / "newer")
    add_revision(newer, "b2", BASE, *ADD_PHONE)
    role = f"mon_{fresh_db.database}"
    admin = sa.create_engine(fresh_db)
    with admin.connect() as conn:
        Project(newer / "alembic.ini").upgrade(conn, "head")
        lineage.record(conn, Project(newer / "alembic.ini"))
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.commit()
    limited = sa.create_engine(fresh_db.set(username=role))
    try:
        with limited.connect() as conn:
            found = lineage.state(conn, Project(project / "alembic.ini"), ["b2"])
        assert found.state == "unknown" and "permission denied for schema dbops" in found.detail
        grants = found.detail[found.detail.index("GRANT USAGE"):]
        with admin.connect() as conn:  # the printed statements, verbatim
            conn.execute(sa.text(grants))
            conn.commit()
        with limited.connect() as conn:
            assert lineage.state(conn, Project(project / "alembic.ini"), ["b2"]).state == "ahead"
    finally:
        limited.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
            conn.commit()
        admin.dispose()
