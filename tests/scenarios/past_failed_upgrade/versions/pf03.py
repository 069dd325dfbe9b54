"""create people, the mood enum used again without create_type=False

Revision ID: pf03
Revises: pf02
"""
import sqlalchemy as sa
from alembic import op

revision = "pf03"
down_revision = "pf02"
branch_labels = None
depends_on = None


def upgrade():
    # passes only inside one long `alembic upgrade` (SQLAlchemy's per-context DDL memo remembers pf01's type)
    op.create_table("people", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("mood", sa.Enum("happy", "sad", name="mood")))


def downgrade():
    op.drop_table("people")
