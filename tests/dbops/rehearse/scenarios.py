"""The rehearsal scenarios: revisions added to a project copy, on a database seeded with enough rows to time.

One chain on the example's first revision, one case per revision, so one
restore rehearses them all (each revision runs in its own transaction, so
each has its own locks and hold times).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from deploy_fixtures import BASE, add_revision

from dbops import postgres

#: enough rows that an index build, a rewrite and a validating scan take measurable time (~35 MB)
ROWS = 200_000

#: (revision, doc, upgrade body)
CASES = [
    ("r1fine", "fine: new table and nullable columns", """
        op.create_table('teams', sa.Column('id', sa.Integer(), primary_key=True))
        op.add_column('users', sa.Column('team_id', sa.Integer(), nullable=True))
        op.add_column('users', sa.Column('nickname', sa.Text(), nullable=True))
    """),
    ("r2index", "index without concurrently", """
        op.create_index('ix_users_name', 'users', ['name'])
    """),
    ("r3concurrent", "index concurrently in an autocommit block", """
        with op.get_context().autocommit_block():
            op.create_index('ix_users_created_at', 'users', ['created_at'], postgresql_concurrently=True)
    """),
    ("r4volatile", "volatile default rewrites the table", """
        op.add_column('users', sa.Column('token', sa.Uuid(), server_default=sa.text('gen_random_uuid()'),
                                         nullable=True))
    """),
    ("r5notnull", "set not null scans the table", """
        op.alter_column('users', 'token', nullable=False)
    """),
    ("r6fk", "foreign key without not valid", """
        op.create_foreign_key('fk_users_team_id_teams', 'users', 'teams', ['team_id'], ['id'])
    """),
    ("r7data", "data migration reads rows", """
        bind = op.get_bind()
        longest = bind.execute(sa.text("SELECT max(length(name)) FROM users")).fetchall()[0][0]
        bind.execute(sa.text("UPDATE users SET nickname = :nick WHERE name = :name"),
                     {"nick": "first", "name": "User 1"})
        op.execute(f"ALTER TABLE users ADD CONSTRAINT ck_users_name_length CHECK (length(name) <= {longest})")
    """),
    ("r8fine", "fine: a nullable column on posts", """
        op.add_column('posts', sa.Column('summary', sa.Text(), nullable=True))
    """),
]


def add_cases(project: Path, cases=CASES, base: str = BASE) -> list[str]:
    """Write the revisions into the project copy, chained in order; returns their ids."""
    down = base
    for rev, doc, body in cases:
        add_revision(project, rev, down, body, doc=doc)
        down = rev
    return [c[0] for c in cases]


def seed(url, rows: int = ROWS) -> None:
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (id, email, name) SELECT gen_random_uuid(), 'user' || g || '@example.com', "
            "'User ' || g FROM generate_series(1, :n) g"), {"n": rows})
        conn.execute(sa.text(
            "INSERT INTO posts (author_id, title) SELECT id, 'post of ' || name FROM users LIMIT 100"))
    engine.dispose()
