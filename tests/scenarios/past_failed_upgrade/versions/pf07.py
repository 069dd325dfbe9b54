"""create teams

Revision ID: pf07
Revises: pf06
"""
import sqlalchemy as sa
from alembic import op

revision = "pf07"
down_revision = "pf06"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("teams", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))


def downgrade():
    op.drop_table("teams")
