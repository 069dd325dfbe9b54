"""Add the first users

Revision ID: 9c0a54914c78
Revises: e2412789c190
Create Date: 2024-03-18 14:02:45.556677

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "9c0a54914c78"
down_revision = "e2412789c190"
branch_labels = None
depends_on = None

user = sa.table(
    "user",
    sa.column("email", sa.String),
    sa.column("full_name", sa.String),
    sa.column("is_active", sa.Boolean),
)

FIRST_USERS = [
    {"email": "admin@example.com", "full_name": "Admin", "is_active": True},
    {"email": "dana@example.com", "full_name": "Dana Scully", "is_active": True},
    {"email": "fox@example.com", "full_name": "Fox Mulder", "is_active": False},
]


def upgrade():
    op.bulk_insert(user, FIRST_USERS)


def downgrade():
    op.execute(user.delete().where(user.c.email.in_([u["email"] for u in FIRST_USERS])))
