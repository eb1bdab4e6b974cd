"""Durable state: SQLite (a file, WAL) by default, PostgreSQL for replicas, one code path."""

from ptx_chain_node.store.database import Database, normalize_url
from ptx_chain_node.store.jobs import JobStore, NewJob

__all__ = ["Database", "JobStore", "NewJob", "normalize_url"]
