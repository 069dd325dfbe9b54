"""uuid keys and hashed tokens from contrib (uuid-ossp, pgcrypto)

Revision ID: ce01
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "ce01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
    op.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("uuid_generate_v4()")),
        sa.Column("token_hash", sa.Text, nullable=False, server_default=sa.text("encode(digest('x', 'sha256'), 'hex')")),
    )


def downgrade():
    op.drop_table("api_keys")
    op.execute("DROP EXTENSION IF EXISTS pgcrypto")
    op.execute('DROP EXTENSION IF EXISTS "uuid-ossp"')
