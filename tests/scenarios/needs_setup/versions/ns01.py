"""create notes with a default from app

Revision ID: ns01
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = "ns01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("tag", sa.Text, server_default=sa.text("app.default_tag()")))


def downgrade():
    op.drop_table("notes")
