"""places with a geometry (PostGIS)

Revision ID: pg02
Revises: ce01
"""
from alembic import op

revision = "pg02"
down_revision = "ce01"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE TABLE places (id serial PRIMARY KEY, location geometry(Point, 4326))")


def downgrade():
    op.execute("DROP TABLE places")
    op.execute("DROP EXTENSION IF EXISTS postgis")
