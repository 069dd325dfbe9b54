"""Models of the async_env scenario (match its head)."""

import sqlalchemy as sa

metadata = sa.MetaData()
tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("state", sa.Enum("todo", "done", name="task_state"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Index("ix_tasks_title", "title"),
)
