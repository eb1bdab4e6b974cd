"""A gateway process SIGKILLed mid-MPC and restarted on its store: the step still completes.

A real ``ptx-chain-node serve`` process (JSON config, SQLite store) on three real MPyC node
processes started by this test (so they outlive the gateway), a simulated PDC hosting the
chain, and an external input party joining over HTTP. The gateway is killed twice: while the
job waits in ``computing`` for the external party, and while the nodes run the MPC. The
chain must be resumed exactly once, with the sum of every party's random data.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chain_harness import (
    chain,
    chain_config,
    collaboration_of,
    gateway_settings,
    join_as_external,
    random_rows,
    salaries,
    target,
    wait_for,
    world,
    write_chains,
)
from processes import GatewayProcess

from gateway.local_nodes import LocalNodes
from ptx_chain_node.job import job_id_for
from ptx_chain_node.testing import ResumeOutcome

pytestmark = pytest.mark.slow


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[LocalNodes]:
    cluster = LocalNodes(3, tmp_path / "nodes", run_timeout=30)
    cluster.start()
    try:
        cluster.wait_ready(30.0)
        yield cluster
    finally:
        cluster.stop()


def stored_state(store: Path, job_id: str) -> str:
    """The job's state as the killed process left it in the SQLite file."""
    with sqlite3.connect(store) as conn:
        (state,) = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    conn.close()
    return str(state)


async def test_gateway_killed_mid_mpc_and_restarted_resumes_once_with_the_result(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    provider, north, lab = (random_rows(rng, rng.randrange(3, 25)) for _ in range(3))
    chains = write_chains(tmp_path / "chains.json", chain("payroll", external=("lab",)))
    config = chain_config(chains, "payroll")
    store = tmp_path / "gw.db"
    async with world() as w:
        settings = gateway_settings(nodes, store, chains, w.pdc.base_url, log_level="info")
        path = tmp_path / "gateway.json"
        path.write_text(json.dumps(settings))
        gateway = GatewayProcess(path, tmp_path / "gateway.log")
        try:
            await gateway.start_ready()
            chain_id = await w.start(gateway.url, "payroll", provider, north)
            job_id = job_id_for(chain_id, target("payroll"))
            await w.job_in(gateway.url, chain_id, "payroll", "computing")

            # 1. Killed while the job waits in computing for the external party.
            await gateway.kill()
            assert stored_state(store, job_id) == "computing"
            await gateway.start_ready()

            # The external party joins the restarted gateway's coordinator; the run starts.
            total = await collaboration_of(w.http, gateway.url, config, chain_id, "total")
            status_url = f"{gateway.url}/v1/collaborations/{total['id']}/status"
            await join_as_external(w.http, gateway.url, config, chain_id, "lab", lab, tmp_path)

            async def running() -> dict[str, Any] | None:
                status: dict[str, Any] = (await w.http.get(status_url)).json()
                return status if status["state"] in ("running", "done") else None

            status = await wait_for(running, 30, "the run started", every=0.01)
            assert status["state"] == "running", "the run ended before it could be interrupted"

            # 2. Killed while the nodes compute.
            await gateway.kill()
            assert stored_state(store, job_id) == "computing"
            await gateway.start_ready()

            job = await w.job_in(
                gateway.url, chain_id, "payroll", "resumed", "failed", "held", timeout=90
            )
            assert job["state"] == "resumed", job
            output = await w.pdc.wait_for_output(chain_id, 10)
            assert output.data["statistics"]["total"] == sum(salaries(provider, north, lab))
            assert output.data["parties"] == {
                "provider": len(provider),
                "north": len(north),
                "lab": len(lab),
            }
            await asyncio.sleep(1.0)  # a late second resume would arrive here
            records = w.pdc.resumes_for(chain_id)
            assert [r.outcome for r in records] == [ResumeOutcome.RESUMED], records
            assert job["attempts"] == 1
            final = (await w.http.get(status_url)).json()
            # The run left at the nodes was adopted, not started again (its inputs are
            # deleted at the nodes once it is done there).
            assert (final["state"], final["run_attempts"]) == ("done", 1)
        finally:
            gateway.kill_now()
