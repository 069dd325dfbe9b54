"""product barcode

Revision ID: c7e2b5a9f1d4
Revises: 6a1f4d8c2e7b
Create Date: 2025-03-17 15:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c7e2b5a9f1d4'
down_revision: Union[str, Sequence[str], None] = '6a1f4d8c2e7b'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('products', sa.Column('barcode', sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('products', 'barcode')
