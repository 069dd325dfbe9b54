"""end the tester's session

Revision ID: te02
Revises: te01
"""
import sqlalchemy as sa
from alembic import op

revision = "te02"
down_revision = 'te01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("b", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE application_name = 'dbops' AND pid <> pg_backend_pid()")


def downgrade():
    op.drop_table("b")
