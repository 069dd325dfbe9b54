"""create customers

Revision ID: sh01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "sh01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("customers", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(200), nullable=False, unique=True))


def downgrade():
    op.drop_table("customers")
