"""embeddings with pgvector

Revision ID: ve01
Revises:
"""
from alembic import op

revision = "ve01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE TABLE embeddings (id serial PRIMARY KEY, v vector(3))")


def downgrade():
    op.execute("DROP TABLE embeddings")
    op.execute("DROP EXTENSION IF EXISTS vector")
