"""A plaintext summary processor: counts and numeric statistics per field and thread.

Useful before an MPC configuration exists (and as the gateway's smoke test): it does on
one node, in the clear, what the MPC processor does across compute nodes in secret.
"""

from __future__ import annotations

import math
from typing import Any

from ptx_chain_node.job import Job, JobResult
from ptx_chain_node.payload import threads
from ptx_chain_node.processor import ProcessingError, Progress


def records_of(data: Any) -> list[dict[str, Any]]:
    """The JSON records of a thread: a list of objects, or one object."""
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    if isinstance(data, dict):
        return [data]
    return []


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, sum, mean, min and max of each numeric field of ``rows``."""
    fields: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and math.isfinite(value):
                fields.setdefault(key, []).append(value)
    stats = {
        key: {
            "count": len(values),
            "sum": sum(values),
            "mean": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
        }
        for key, values in sorted(fields.items())
    }
    return {"records": len(rows), "fields": stats}


class SummaryProcessor:
    """Summarises every input thread and all threads together."""

    async def process(self, job: Job, progress: Progress) -> JobResult:
        if job.payload is None:
            raise ProcessingError("job has no payload")
        per_thread = []
        everything: list[dict[str, Any]] = []
        for thread in threads(job.payload):
            rows = records_of(thread.data)
            everything.extend(rows)
            source = thread.participant.id if thread.participant else None
            per_thread.append({"role": thread.role, "source": source, **summarize(rows)})
        return JobResult(
            data={"total": summarize(everything), "threads": per_thread},
            params={"processor": "summary"},
        )
