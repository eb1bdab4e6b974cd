"""The SQLite job writer process: commits batches of job rows it reads from stdin.

Run by :class:`ptx_chain_node.store.sqlite_intake.SqliteJobIntake` as
``python -I sqlite_writer.py PATH`` (standard library only, so it starts fast and imports
nothing of the package). A process rather than a thread: a thread would need the gateway's
GIL after every wake-up and after every SQLite call, and under load the event loop holds it
for milliseconds at a time; this process has its own.

Protocol, both ways: frames of a 4-byte big-endian length and a pickle.
- in, first frame: the one-row insert statement (``str``, ``?`` placeholders);
- in, then: ``(batch_id, rows)``, ``rows`` a list of parameter tuples of that statement;
- out: ``(batch_ids, error)`` once those batches are committed (``error`` None), or rolled
  back (``error`` = ``(exception class name, message)``).

Every frame already read when a commit starts goes into that one transaction (group
commit); frames arriving meanwhile wait for the next. The connection uses WAL with
``synchronous=FULL``: a batch is reported only after its commit synced the WAL. Tables are
the migrations' business; this process creates nothing. End of input ends the process:
the gateway closes the pipe when it stops, or the pipe closes when the gateway dies. (The
gateway starts it in a session of its own, so a Ctrl-C or a signal to the gateway's process
group does not end it before the gateway's graceful shutdown had it commit what it sent.)
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import struct
import sys
from typing import Any

HEADER = struct.Struct("!I")
#: Read size; a frame larger than this arrives in several reads.
CHUNK = 1 << 20


def frame(message: object) -> bytes:
    """One protocol frame holding ``message``."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def split_frames(buffer: bytearray) -> list[Any]:
    """Remove every complete frame from the front of ``buffer`` and return their messages."""
    messages = []
    start = 0
    while len(buffer) - start >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + size
        if end > len(buffer):
            break
        # Only ever between the gateway and its own child, over an anonymous pipe.
        messages.append(pickle.loads(buffer[start + HEADER.size : end]))  # noqa: S301
        start = end
    del buffer[:start]
    return messages


def open_connection(path: str) -> sqlite3.Connection:
    """WAL, a sync of the WAL at every commit, explicit transactions only."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:
        raise RuntimeError("SQLite refused synchronous=FULL")
    return conn


def commit(conn: sqlite3.Connection, statement: str, batches: list[Any]) -> Any:
    """Insert the rows of ``batches`` in one transaction; the reply for them."""
    ids = [batch_id for batch_id, _ in batches]
    try:
        conn.execute("BEGIN IMMEDIATE")
        for _, rows in batches:
            conn.executemany(statement, rows)
        conn.execute("COMMIT")
    except Exception as exc:  # noqa: BLE001 - reported to every waiter of these batches
        if conn.in_transaction:
            conn.rollback()
        return ids, (type(exc).__name__, str(exc))
    return ids, None


def serve(path: str, read_fd: int = 0, write_fd: int = 1) -> None:
    """Commit batches read from ``read_fd`` until end of input, replying on ``write_fd``."""
    conn = open_connection(path)
    buffer = bytearray()
    statement: str | None = None
    try:
        while chunk := os.read(read_fd, CHUNK):
            buffer += chunk
            messages = split_frames(buffer)
            if statement is None and messages:
                statement = messages.pop(0)
            if not messages:
                continue
            assert statement is not None
            reply = frame(commit(conn, statement, messages))
            written = 0
            while written < len(reply):
                written += os.write(write_fd, reply[written:])
    finally:
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
