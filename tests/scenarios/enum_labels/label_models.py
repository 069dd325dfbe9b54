"""Models of the enum_labels scenario: "shipped" is in the model, not in the migration."""

import sqlalchemy as sa

metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.Enum("new", "paid", "shipped", name="order_status"), nullable=False),
)
