"""add the banned status

Revision ID: do03
Revises: do02
"""
import sqlalchemy as sa
from alembic import op

revision = "do03"
down_revision = 'do02'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("status", existing_type=sa.Enum("new", "active", name="user_status"),
                              type_=sa.Enum("new", "active", "banned", name="user_status"))


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("status", existing_type=sa.Enum("new", "active", "banned", name="user_status"),
                              type_=sa.Enum("new", "active", name="user_status"))
