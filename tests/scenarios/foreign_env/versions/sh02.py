"""create orders

Revision ID: sh02
Revises: sh01
"""
import sqlalchemy as sa
from alembic import op

revision = "sh02"
down_revision = 'sh01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("total", sa.Numeric(10, 2), nullable=False),
        sa.CheckConstraint("total >= 0", name="ck_orders_total"),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])


def downgrade():
    op.drop_index("ix_orders_customer_id", table_name="orders")
    op.drop_table("orders")
