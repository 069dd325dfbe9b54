"""merge age and city

Revision ID: mo03
Revises: mo2a, mo2b
"""
import sqlalchemy as sa
from alembic import op

revision = "mo03"
down_revision = ('mo2a', 'mo2b')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
