"""drop users.phone for good

Revision ID: md03
Revises: md02
"""
import sqlalchemy as sa
from alembic import op

revision = "md03"
down_revision = 'md02'
branch_labels = None
depends_on = None
irreversible = True


def upgrade():
    op.drop_column("users", "phone")


def downgrade():
    raise NotImplementedError("the phone numbers are gone")
