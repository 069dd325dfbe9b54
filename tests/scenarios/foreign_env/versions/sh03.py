"""add orders.status

Revision ID: sh03
Revises: sh02
"""
import sqlalchemy as sa
from alembic import op

revision = "sh03"
down_revision = 'sh02'
branch_labels = None
depends_on = None


def upgrade():
    status = sa.Enum("new", "paid", "shipped", name="order_status")
    status.create(op.get_bind())
    op.add_column("orders", sa.Column("status", status, nullable=False, server_default="new"))


def downgrade():
    op.drop_column("orders", "status")
    sa.Enum(name="order_status").drop(op.get_bind())
