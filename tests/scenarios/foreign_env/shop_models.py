"""The shop's models: what the database must look like at head."""

import sqlalchemy as sa

metadata = sa.MetaData()

status = sa.Enum("new", "paid", "shipped", name="order_status")

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(200), nullable=False, unique=True),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("status", status, nullable=False, server_default="new"),
    sa.Column("total", sa.Numeric(10, 2), nullable=False),
    sa.CheckConstraint("total >= 0", name="ck_orders_total"),
)
