"""Alembic environment: runs on the connection handed over by ``Database.migrate``."""

from alembic import context

from ptx_chain_node.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ptx_chain_node.store.Database.migrate()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
