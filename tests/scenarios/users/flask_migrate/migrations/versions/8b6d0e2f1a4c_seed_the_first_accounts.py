"""seed the first accounts

Revision ID: 8b6d0e2f1a4c
Revises: 4f2e1a9b7c3d
Create Date: 2024-05-07 09:02:41.118202

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8b6d0e2f1a4c'
down_revision = '4f2e1a9b7c3d'
branch_labels = None
depends_on = None

user = sa.table('user', sa.column('username', sa.String), sa.column('email', sa.String))


def upgrade():
    op.bulk_insert(user, [
        {'username': 'miguel', 'email': 'miguel@example.com'},
        {'username': 'susan', 'email': 'susan@example.com'},
        {'username': 'john', 'email': 'john@example.com'},
        {'username': 'david', 'email': 'david@example.com'},
    ])


def downgrade():
    op.execute(user.delete().where(user.c.username.in_(['miguel', 'susan', 'john', 'david'])))
