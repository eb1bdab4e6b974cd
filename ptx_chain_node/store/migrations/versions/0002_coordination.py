"""coordination tables: collaborations, parties, notifications and their attempts

Revision ID: 0002_coordination
Revises: 0001_jobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_coordination"
down_revision = "0001_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collaborations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("program_sha256", sa.String(64), nullable=False),
        sa.Column("engine", sa.String(50), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deadline", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("run_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_started_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("result_ids", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("ix_collaborations_state_deadline", "collaborations", ["state", "deadline"])
    op.create_table(
        "collaboration_parties",
        sa.Column(
            "collaboration_id",
            sa.String(36),
            sa.ForeignKey("collaborations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("party_id", sa.String(100), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("identity", sa.String(500), nullable=True),
        sa.Column("endpoint", sa.String(2000), nullable=True),
        sa.Column("notify_secret", sa.String(200), nullable=True),
        sa.Column("approved_sha256", sa.String(64), nullable=True),
        sa.Column("secret_ids", sa.Text, nullable=True),
        sa.Column("rows", sa.Integer, nullable=True),
        sa.Column("confirmed_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("collaboration_id", "role", "party_id"),
    )
    op.create_table(
        "collaboration_notifications",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column(
            "collaboration_id",
            sa.String(36),
            sa.ForeignKey("collaborations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("party_id", sa.String(100), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deadline", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_collaboration_notifications_state_next",
        "collaboration_notifications",
        ["state", "next_attempt_at"],
    )
    op.create_table(
        "collaboration_notification_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "notification_id",
            sa.String(160),
            sa.ForeignKey("collaboration_notifications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_collaboration_notification_attempts_notification_id",
        "collaboration_notification_attempts",
        ["notification_id"],
    )


def downgrade() -> None:
    op.drop_table("collaboration_notification_attempts")
    op.drop_index("ix_collaboration_notifications_state_next", "collaboration_notifications")
    op.drop_table("collaboration_notifications")
    op.drop_table("collaboration_parties")
    op.drop_index("ix_collaborations_state_deadline", "collaborations")
    op.drop_table("collaborations")
