"""A chain step encodes each thread's columns once for all its computations.

Several computations of one chain configuration are several collaborations; each thread's
typed columns go to each of them. The processor wraps a thread's columns in one
``EncodedColumns`` and ``prepare_upload`` reads it renamed to each program's columns, so
each ``(column, scale)`` is encoded once per thread (counted by ``EncodedColumns.encodings``)
and the results are those of a plaintext recomputation.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.chain import ChainContext
from ptx_chain_node.chains.processor import MpcProcessor
from ptx_chain_node.chains.records import ThreadRows
from ptx_chain_node.chains.uploads import Computed, EngineUploads, Upload
from ptx_chain_node.coordination.records import CollaborationRecord
from ptx_chain_node.errors import PtxError
from ptx_chain_node.job import Job, JobState
from ptx_chain_node.mpc.encoding import EncodedColumns
from ptx_chain_node.mpc.registry import Binding, binding
from ptx_chain_node.mpc.sharing import reveal
from ptx_chain_node.mpc.upload import prepare_upload
from ptx_chain_node.payload import parse_payload
from ptx_chain_node.testing import serve

TARGET = "https://catalog.test/v1/catalog/serviceofferings/mpc-encoding"
EDGES = ["0", "250.5", "500", "1000"]
SALARY = {"columns": {"value": "salary"}, "scale": 2}


def _prepared_values(found: Binding, columns: Any) -> list[int]:
    """The aggregates a party's shares hold (revealed from two of the three shares)."""
    prepared = prepare_upload(found, columns, m=3, t=1)
    values: list[int] = found.bound.program.stype.signed(reveal(prepared.vectors[:2]))
    return values


def test_several_programs_encode_each_column_and_scale_once() -> None:
    rng = random.Random()
    rows = rng.randrange(50, 200)
    raw = {
        "salary": [Decimal(rng.randrange(0, 100_000)).scaleb(-2) for _ in range(rows)],
        "hours": [rng.randrange(1, 60) for _ in range(rows)],
    }
    programs = [
        binding("mean", "1.0.0", SALARY),
        binding("variance", "1.0.0", SALARY),
        binding("histogram", "1.0.0", {**SALARY, "edges": EDGES}),
        binding("sum", "1.0.0", {"columns": {"value": "salary"}, "scale": 3}),
        binding("sum", "1.0.0", {"columns": {"value": "hours"}}),
        binding(
            "weighted_mean", "1.0.0", {**SALARY, "columns": {"value": "salary", "weight": "hours"}}
        ),
    ]
    encoded = EncodedColumns(raw)
    got = [_prepared_values(found, encoded) for found in programs]
    assert encoded.encodings == Counter({("salary", 2): 1, ("salary", 3): 1, ("hours", 0): 1})
    # The same aggregates as each program on plain columns, which encodes on its own.
    assert got == [_prepared_values(found, raw) for found in programs]
    # ... and as the plaintext: count and exact sums in encoded units (fixed point f = 64).
    total = sum(raw["salary"])
    assert got[0] == [rows << 64, int(total * 100) << 64]
    assert got[3][-1] == int(total * 1000)
    assert got[4][-1] == sum(raw["hours"])


def test_a_renamed_view_names_the_program_column_and_misses_absent_sources() -> None:
    encoded = EncodedColumns({"salary": [Decimal("1.5"), Decimal("2.125")], "hours": [1, 2]})
    view = encoded.renamed({"value": "salary", "weight": "nowhere"})
    assert dict(view) == {"value": encoded["salary"]}
    with pytest.raises(PtxError) as caught:
        prepare_upload(binding("mean", "1.0.0", SALARY), encoded, m=3, t=1)
    assert [p.field for p in caught.value.problems] == ["value[1]"]  # as before the cache
    assert encoded.encodings == Counter()  # a failed encoding is not kept
    with pytest.raises(PtxError) as caught:
        prepare_upload(
            binding("weighted_mean", "1.0.0", {"columns": {"value": "hours", "weight": "hours"}}),
            {"salary": [1]},
            m=3,
            t=1,
        )
    assert [p.field for p in caught.value.problems] == ["columns.value"]


# -- the processor on three real MPyC nodes --------------------------------------------------


class CountingUploads:
    """The MPyC uploads, keeping every ``EncodedColumns`` the processor hands them."""

    engine = "mpyc"

    def __init__(self, inner: EngineUploads) -> None:
        self.inner = inner
        self.given: dict[str, list[EncodedColumns]] = {}

    async def upload(
        self,
        record: CollaborationRecord,
        party_id: str,
        rows: ThreadRows,
        encoded: EncodedColumns,
    ) -> Upload:
        self.given.setdefault(party_id, []).append(encoded)
        return await self.inner.upload(record, party_id, rows, encoded)

    async def result(self, record: CollaborationRecord) -> Computed:
        return await self.inner.result(record)


def _chain_file(path: Path) -> Path:
    salary = {**SALARY, "min_group_size": 2}
    config = {
        "chains": [
            {
                "name": "encoding",
                "target_ids": [TARGET],
                "deadline": 60,
                "input": {
                    "records": "rows",
                    "columns": [
                        {"name": "salary", "type": "fixed", "scale": 2, "min": 0, "max": 10**4},
                        {"name": "hours", "type": "integer", "min": 0, "max": 100},
                    ],
                },
                "parties": [
                    {"id": "provider", "thread": "origin"},
                    {"id": "north", "participant_id": "participant-north"},
                ],
                "computations": [
                    {"name": "mean", "program": "mean", "parameters": salary},
                    {"name": "variance", "program": "variance", "parameters": salary},
                    {
                        "name": "histogram",
                        "program": "histogram",
                        "parameters": {**salary, "edges": EDGES},
                    },
                    {
                        "name": "total_hours",
                        "program": "sum",
                        "parameters": {"columns": {"value": "hours"}, "min_group_size": 1},
                    },
                ],
                "result": {"key": "statistics"},
            }
        ]
    }
    target = path / "chains.json"
    target.write_text(json.dumps(config))
    return target


def _rows(rng: random.Random, count: int) -> list[dict[str, str | int]]:
    return [
        {"salary": str(Decimal(rng.randrange(0, 10**6)).scaleb(-2)), "hours": rng.randrange(101)}
        for _ in range(count)
    ]


@pytest.mark.slow
async def test_the_chain_processor_encodes_each_thread_column_once(tmp_path: Path) -> None:
    rng = random.Random()
    datasets = {name: _rows(rng, rng.randrange(5, 60)) for name in ("provider", "north")}
    nodes = LocalNodes(3, tmp_path / "nodes", run_timeout=30)
    nodes.start()
    try:
        nodes.wait_ready(30.0)
        settings = Settings(
            store_url=f"sqlite:///{tmp_path / 'gw.db'}",
            pdc_url="http://127.0.0.1:9",  # a final node: nothing is resumed
            resources=[
                {
                    "name": "mpc",
                    "path": "/mpc",
                    "processor": "mpc",
                    "chains": str(_chain_file(tmp_path)),
                }
            ],
            worker={"enabled": False},
            coordination={"run_poll_interval": 0.1, "sweep_interval": 0.5},
            mpyc=nodes.settings(Settings().mpyc).model_dump(),
            operator_token="operator-token-for-tests-0123456789",
            log_level="warning",
            log_json=False,
        )
        app = create_app(settings, configure_logging=False)
        async with serve(app):
            runtime = app.state.runtime
            configured = runtime.processor_for("mpc")
            assert isinstance(configured, MpcProcessor) and runtime.mpyc is not None
            uploads = CountingUploads(runtime.mpyc)
            processor = MpcProcessor(
                configured.matcher,
                configured.coordinator,
                {"mpyc": uploads},
                operator_token=settings.operator_token.get_secret_value(),
            )
            payload = {
                "data": {
                    "origin": {"rows": datasets["provider"]},
                    "additionalData": [
                        {
                            "participant": {"id": "participant-north"},
                            "data": {"rows": datasets["north"]},
                        }
                    ],
                }
            }
            now = time.time()
            job = Job(
                id="job-encoding",
                resource="mpc",
                mode="async",
                state=JobState.RECEIVED,
                context=ChainContext(chain_id="@supervisor:encoding-1", target_id=TARGET),
                payload=parse_payload(payload),
                created_at=now,
                updated_at=now,
                not_before=now,
            )
            states: list[JobState] = []

            async def progress(state: JobState) -> None:
                states.append(state)

            result = await processor.process(job, progress)
    finally:
        nodes.stop()
    assert states == [JobState.SHARED, JobState.COMPUTING]
    # One EncodedColumns per thread, handed to all four computations, each column encoded once.
    assert set(uploads.given) == {"provider", "north"}
    for given in uploads.given.values():
        assert len(given) == 4 and all(encoded is given[0] for encoded in given)
        assert given[0].encodings == Counter({("salary", 2): 1, ("hours", 0): 1})
    # The results are the plaintext's.
    rows = [r for thread in datasets.values() for r in thread]
    salaries = [Decimal(str(r["salary"])) for r in rows]
    got = result.data["statistics"]
    assert math.isclose(got["mean"], float(statistics.fmean(salaries)), rel_tol=1e-9)
    assert math.isclose(got["variance"], float(statistics.variance(salaries)), rel_tol=1e-9)
    edges = [Decimal(e) for e in EDGES]
    want = [
        sum(1 for s in salaries if lo <= s < hi or s == hi == edges[-1])
        for lo, hi in itertools.pairwise(edges)
    ]
    assert list(got["histogram"].values()) == want
    assert Decimal(str(got["total_hours"])) == sum(int(r["hours"]) for r in rows)
    assert result.data["parties"] == {name: len(thread) for name, thread in datasets.items()}
