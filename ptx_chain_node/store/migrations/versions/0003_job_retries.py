"""jobs.retries: how many times an operator sent a job back to ``received``

Revision ID: 0003_job_retries
Revises: 0002_coordination
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_job_retries"
down_revision = "0002_coordination"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("retries", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retries")
