"""create tickets with a state enum

Revision ID: eo01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "eo01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("tickets", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("state", sa.Enum("open", "closed", name="ticket_state"), nullable=False))


def downgrade():
    op.drop_table("tickets")
    sa.Enum(name="ticket_state").drop(op.get_bind())
