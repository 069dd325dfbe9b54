"""first customers and their orders

Revision ID: 5d2a8f6c3e1b
Revises: 1b7e3c9d2a4f
Create Date: 2025-01-20 08:12:55.730190

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5d2a8f6c3e1b'
down_revision: Union[str, Sequence[str], None] = '1b7e3c9d2a4f'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

customers = sa.table('customers', sa.column('email', sa.String), sa.column('name', sa.String))

FIRST = {'ada@example.com': [12.5, 99.0], 'grace@example.com': [7.25]}


def upgrade() -> None:
    """Upgrade schema."""
    op.bulk_insert(customers, [
        {'email': 'ada@example.com', 'name': 'Ada Lovelace'},
        {'email': 'grace@example.com', 'name': 'Grace Hopper'},
    ])
    for email, totals in FIRST.items():
        for total in totals:
            op.execute(sa.text(
                "INSERT INTO orders (customer_id, total) SELECT id, :total FROM customers WHERE email = :email"
            ).bindparams(total=total, email=email))


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(
        "DELETE FROM orders WHERE customer_id IN "
        "(SELECT id FROM customers WHERE email IN ('ada@example.com', 'grace@example.com'))"
    )
    op.execute(customers.delete().where(customers.c.email.in_(list(FIRST))))
