"""first products

Revision ID: 6a1f4d8c2e7b
Revises: 0e5c7a2b9d3f
Create Date: 2025-03-04 09:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '6a1f4d8c2e7b'
down_revision: Union[str, Sequence[str], None] = '0e5c7a2b9d3f'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

products = sa.table('products', sa.column('sku', sa.String), sa.column('name', sa.String),
                    sa.column('price', sa.Numeric), sa.column('in_stock', sa.Integer))

FIRST = [
    {'sku': 'BOLT-M6', 'name': 'Hex bolt M6', 'price': 0.12, 'in_stock': 5000},
    {'sku': 'NUT-M6', 'name': 'Hex nut M6', 'price': 0.05, 'in_stock': 8000},
    {'sku': 'WASH-M6', 'name': 'Washer M6', 'price': 0.02, 'in_stock': 3},
    {'sku': 'DRILL-6', 'name': 'Drill bit 6 mm', 'price': 4.90, 'in_stock': 12},
]


def upgrade() -> None:
    """Upgrade schema."""
    op.bulk_insert(products, FIRST)


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(products.delete().where(products.c.sku.in_([p['sku'] for p in FIRST])))
