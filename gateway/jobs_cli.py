"""The ``jobs`` commands of ``ptx-chain-node`` (added by gateway.cli): list, show, retry.

They work directly on the store the gateway config names (``store_url``), so they work
while the gateway is down; a running gateway picks a retried job up at its next poll.
Nothing here prints a job's data: ``show`` says only whether a payload or result is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.settings import Settings
from ptx_chain_node.job import Job, JobState, NotRetryable
from ptx_chain_node.store import Database, JobStore

SettingsLoader = Callable[[argparse.Namespace], Settings]


async def _with_store(settings: Settings, action: Callable[[JobStore], Any]) -> Any:
    database = Database(settings.store_url)
    try:
        await database.migrate()
        return await action(JobStore(database))
    finally:
        await database.dispose()


def _line(job: Job) -> str:
    error = f"  {job.last_error}" if job.last_error else ""
    return (
        f"{job.id}  {job.state.value:<12} {job.resource:<12} attempts={job.attempts} "
        f"retries={job.retries}  {job.context.chain_id}{error}"
    )


def _list(args: argparse.Namespace, settings: Settings) -> int:
    state = JobState(args.state) if args.state else None

    async def action(store: JobStore) -> list[Job]:
        return await store.list(state=state, limit=args.limit)

    found: list[Job] = asyncio.run(_with_store(settings, action))
    if args.json:
        print(json.dumps([job.summary() for job in found], indent=2))
    else:
        for job in found:
            print(_line(job))
        print(f"{len(found)} job(s)", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def action(store: JobStore) -> Job | None:
        return await store.get(args.id, with_data=True)

    job: Job | None = asyncio.run(_with_store(settings, action))
    if job is None:
        print(f"jobs show: no job {args.id}", file=sys.stderr)
        return 1
    shown = job.summary() | {
        "hasPayload": job.payload is not None,
        "hasResult": job.result is not None,
        "retries": job.retries,
    }
    print(json.dumps(shown, indent=2))
    return 0


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    async def action(store: JobStore) -> tuple[Job | None, Job | None]:
        before = await store.get(args.id)
        return before, await store.retry(args.id) if before is not None else None

    try:
        before, after = asyncio.run(_with_store(settings, action))
    except NotRetryable as exc:
        print(f"jobs retry: job {args.id} cannot be retried: {exc}", file=sys.stderr)
        return 1
    if before is None or after is None:
        print(f"jobs retry: no job {args.id}", file=sys.stderr)
        return 1
    print(f"job {after.id}: {before.state.value} -> {after.state.value} (retries={after.retries})")
    return 0


def add_commands(commands: Any, load: SettingsLoader) -> None:
    """Add ``jobs list|show|retry`` to the ``ptx-chain-node`` sub-commands."""
    jobs = commands.add_parser("jobs", help="list, show and retry jobs (on the store)")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)

    def handler(run: Callable[[argparse.Namespace, Settings], int]) -> Any:
        return lambda args: run(args, load(args))

    listing = actions.add_parser("list", help="jobs, newest first (never their data)")
    listing.add_argument("--state", choices=[s.value for s in JobState])
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="print JSON job summaries")
    show = actions.add_parser("show", help="one job's summary (never its data)")
    show.add_argument("id")
    retry = actions.add_parser(
        "retry", help="send a held or failed job back to where it can run again"
    )
    retry.add_argument("id")
    for parser, run in ((listing, _list), (show, _show), (retry, _retry)):
        parser.add_argument("--config", type=Path, help="the gateway's TOML or JSON config")
        parser.set_defaults(handler=handler(run))
