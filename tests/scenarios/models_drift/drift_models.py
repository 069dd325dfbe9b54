"""Models with a column (users.nickname) that no migration creates."""

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(20)),
    sa.Column("name", sa.String(50)),
    sa.Column("nickname", sa.String(30)),
)
