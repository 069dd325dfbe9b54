"""create orders

Revision ID: el01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "el01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("status", sa.Enum("new", "paid", name="order_status"), nullable=False))


def downgrade():
    op.drop_table("orders")
    sa.Enum(name="order_status").drop(op.get_bind())
