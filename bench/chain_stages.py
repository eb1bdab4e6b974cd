"""Where a large chain body's time goes: the gateway's path stage by stage, in one process.

The same functions the gateway runs for ``bench/chain.py``'s chain (3 providers, mean and
10-bin histogram of one integer column), called directly on a PDC-shaped merged body of
``--rows`` rows, without HTTP and without MPC runs, each stage timed on its own (the best
of ``--repeat``) with the process's RSS after it:

- ``read body``: the ASGI body read of the resource endpoint (64 KiB chunks);
- ``decode JSON`` and ``payload model``: ``decode_json``, ``split_credentials``,
  ``parse_payload``;
- ``pre-ACK validate``: the ``mpc`` processor's ``validate`` (chain match, threads to
  parties, typed columns of every row);
- ``store payload``: ``dump_payload`` and the job's insert (SQLite file, synchronous=FULL);
- ``worker claim`` and ``worker load``: the claim, then the job with its payload;
- ``typed rows again``: ``chain_inputs`` in ``process``;
- ``pre-aggregate + share``: ``prepare_upload`` per party and computation (3 nodes).

Then the simulated PDC's own share (not the product, but in ``bench/chain.py``'s worker):
serving a provider's rows, decoding them, and writing the merged body (stdlib ``json``).

    .venv/bin/python bench/chain_stages.py --rows 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.chain import PROVIDERS, TARGET, chain_config  # noqa: E402

CHUNK = 65536


def rss_mb() -> float:
    """This process's resident set now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def merged_body(rows: int, seed: int) -> dict[str, Any]:
    """What the node's PDC posts: the origin's rows and two additional-data threads."""
    rng = np.random.default_rng(seed)
    sizes = [rows // 3 + (1 if j < rows % 3 else 0) for j in range(3)]
    threads = [[{"v": int(v)} for v in rng.integers(0, 10_000, n)] for n in sizes]
    additional = [
        {"participant": {"name": name, "id": f"participant-{name}"}, "data": data}
        for name, data in zip(PROVIDERS[1:], threads[1:], strict=True)
    ]
    data = {"origin": threads[0], "additionalData": additional}
    return {"data": data, "contract": "https://contract.bench.test/1", "params": "custom"}


class Stages:
    """Best-of-``repeat`` timing of each stage; the last result is kept for the next."""

    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.rows: list[dict[str, Any]] = []

    async def run(
        self, name: str, step: Callable[[], Awaitable[Any]], *, once: bool = False
    ) -> Any:
        best, result = float("inf"), None
        for _ in range(1 if once else self.repeat):
            result = None
            gc.collect()
            started = time.perf_counter()
            result = await step()
            best = min(best, time.perf_counter() - started)
        self.rows.append({"stage": name, "seconds": best, "rss_mb": rss_mb()})
        print(f"{name:32s} {best:7.3f} s   RSS {rss_mb():6.0f} MB", flush=True)
        return result


async def gateway_stages(rows: int, seed: int, repeat: int, tmp: Path) -> list[dict[str, Any]]:
    from gateway.resource import read_body
    from ptx_chain_node.chain import ChainContext
    from ptx_chain_node.chains.config import load_chain_file
    from ptx_chain_node.chains.matching import ChainMatcher
    from ptx_chain_node.chains.processor import chain_inputs
    from ptx_chain_node.mpc.registry import binding
    from ptx_chain_node.mpc.upload import prepare_upload
    from ptx_chain_node.payload import decode_json, dump_payload, parse_payload, split_credentials
    from ptx_chain_node.store import Database, JobStore, NewJob
    from ptx_chain_node.testing.asgi import decode_body

    stages = Stages(repeat)
    matcher = ChainMatcher(load_chain_file(chain_config(tmp)))
    config = matcher.chains.chains[0]
    # What each stage hands the next; popped once used, so RSS shows what is really held.
    held: dict[str, Any] = {"body": merged_body(rows, seed)}
    held["served"] = held["body"]["data"]["origin"]

    held["served_raw"] = await stages.run(
        "PDC: serve one provider (json)", lambda: _now(json.dumps(held["served"]).encode())
    )
    await stages.run(
        "PDC: decode one provider (json)", lambda: _now(decode_body(held["served_raw"]))
    )
    held["raw"] = await stages.run(
        "PDC: merged body (json.dumps)", lambda: _now(json.dumps(held["body"]).encode())
    )
    for name in ("body", "served", "served_raw"):
        held.pop(name)
    gc.collect()
    print(f"{'(body)':32s} {len(held['raw']) / 1e6:7.1f} MB", flush=True)

    async def read() -> bytes:
        raw = held["raw"]
        chunks = [raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK)]
        messages = iter(chunks)

        async def receive() -> dict[str, Any]:
            chunk = next(messages)
            return {"type": "http.request", "body": chunk, "more_body": chunk is not chunks[-1]}

        return await read_body(receive, {}, 1 << 30)

    held["raw"] = await stages.run("read body (ASGI)", read)
    held["document"] = await stages.run("decode JSON", lambda: _now(decode_json(held["raw"])))
    held.pop("raw")
    held["payload"] = await stages.run(
        "payload model", lambda: _now(parse_payload(split_credentials(held["document"])[0]))
    )
    held.pop("document")
    context = ChainContext(chain_id="bench-1", target_id=TARGET)

    async def validate() -> None:
        found = await matcher.match(context, held["payload"])
        chain_inputs(found, held["payload"])

    await stages.run("pre-ACK validate (typed rows)", validate)
    database = Database(f"sqlite:///{tmp / 'stages.db'}")
    await database.migrate()
    store = JobStore(database)
    text = await stages.run("store: dump payload", lambda: _now(dump_payload(held["payload"])))
    held.pop("payload")
    job = NewJob(
        id="bench-job", resource="mpc", mode="async", context=context, payload=text, not_before=0
    )
    await stages.run("store: insert + commit", lambda: store.insert_many([job]), once=True)
    await stages.run("worker: claim", lambda: store.claim("bench", 600), once=True)
    held["job"] = await stages.run(
        "worker: load payload", lambda: store.get("bench-job", with_data=True)
    )
    inputs = await stages.run(
        "process: typed rows again", lambda: _now(chain_inputs(config, held["job"].payload))
    )
    held.pop("job")
    for computation in config.computations:
        ref = computation.ref()
        found = binding(ref.name, ref.version, ref.parameters)

        async def share(found: Any = found) -> None:
            for _, given in inputs:
                prepare_upload(found, given.columns, 3, 1)

        await stages.run(f"pre-aggregate + share: {computation.name}", share)
    await database.dispose()
    return stages.rows


async def _now(value: Any) -> Any:
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many per stage")
    parser.add_argument("--json", type=Path, help="write the stages as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ptx-bench-stages-") as name:
        found = asyncio.run(gateway_stages(args.rows, args.seed, args.repeat, Path(name)))
    if args.json:
        args.json.write_text(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
