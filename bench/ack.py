"""ACK throughput: the gateway's resource endpoint against a bare Starlette ACK.

Both run under uvicorn (one process, same flags) on this machine and are loaded by the
same wrk run shape. The gateway stores each delivery durably (SQLite, WAL, synchronous
FULL, group commit) before it answers; the baseline answers the same ACK without a store.
Every request carries a distinct chain id, so each one is a new job.

    python bench/ack.py [--duration 10] [--connections 64] [--rounds 3] [--with-worker]

Needs ``wrk`` (Debian: ``apt-get install wrk``). Prints requests/s, p50 and p99 of both,
and the ratio gateway/baseline. Goal: ratio >= 0.7.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import uuid
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def resource(request):
    await request.body()
    return JSONResponse({"status": "ACK", "jobId": str(uuid.uuid4())})

app = Starlette(routes=[Route("/resource", resource, methods=["POST"])])
"""

WRK_SCRIPT = """
local counter = 0
local thread_id = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end
wrk.method = "POST"
wrk.body = '{"data":[{"salary":52000,"category":"engineer"},{"salary":48000,"category":"nurse"}],'
  .. '"contract":"https://contract.test/contracts/67f3dc0a63abc4c89b80c161","params":""}'
wrk.headers["content-type"] = "text/plain"
wrk.headers["x-ptx-target-id"] = "https://catalog.test/v1/catalog/serviceofferings/mpc"
wrk.headers["x-ptx-service-chain-next-target"] = "https://catalog.test/v1/catalog/serviceofferings/next"
wrk.headers["x-ptx-dataExchangeId"] = "67f6758caed89eb179984140"
request = function()
  counter = counter + 1
  wrk.headers["x-ptx-service-chain-id"] = string.format(
    "@supervisor:%s-%d-%d-%08x", RUN, thread_id, counter, counter)
  return wrk.format()
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.post(url, content=b"{}", timeout=1).status_code < 600:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {
        "requests": float(requests.group(1)) if requests else 0.0,
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def measure(
    name: str, cmd: list[str], env: dict[str, str], tmp: Path, args: argparse.Namespace, port: int
) -> dict[str, float]:
    proc = start(cmd, env, tmp)
    try:
        url = f"http://127.0.0.1:{port}/resource"
        wait_ready(url)
        script = tmp / f"{name}.lua"
        script.write_text(f'RUN = "{name}{time.time_ns()}"\n' + WRK_SCRIPT)
        run_wrk(url, script, 2, args.connections)  # warm-up
        script.write_text(f'RUN = "{name}{time.time_ns()}"\n' + WRK_SCRIPT)
        cpu_before = cpu_seconds(proc.pid)
        result = run_wrk(url, script, args.duration, args.connections)
        # CPU the server (all its threads and helper processes) spent per request: unlike
        # req/s, it hardly depends on what else the shared machine runs.
        cpu = cpu_seconds(proc.pid) - cpu_before
        result["cpu_us"] = cpu / max(result["requests"], 1.0) * 1e6
        return result
    finally:
        stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its descendants (Linux ``/proc``):
    the server and any helper process it started (the gateway's SQLite writer)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        process = int(stat.parent.name)
        parents[process] = int(fields[1])
        ticks[process] = int(fields[11]) + int(fields[12])
    total = 0
    for process, used in ticks.items():
        ancestor = process
        while ancestor not in (pid, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == pid:
            total += used
    return total / os.sysconf("SC_CLK_TCK")


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median throughput (its latencies belong to that same round)."""
    ordered = sorted(rows, key=lambda r: r["rps"])
    return ordered[len(ordered) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate baseline/gateway this many times; report medians",
    )
    parser.add_argument(
        "--with-worker",
        action="store_true",
        help="also process the jobs in the same process while loading",
    )
    parser.add_argument("--loop", default="auto", help="uvicorn --loop, for both sides")
    parser.add_argument("--http", default="auto", help="uvicorn --http, for both sides")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    python = sys.executable
    baselines: list[dict[str, float]] = []
    gateways: list[dict[str, float]] = []
    jobs = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "baseline_app.py").write_text(BASELINE)
        path = os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        for n in range(args.rounds):
            port = free_port()
            # The same uvicorn command line for both sides (loop and HTTP implementation
            # included), so only the application differs.
            uvicorn_flags = [
                "--loop",
                args.loop,
                "--http",
                args.http,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ]
            baselines.append(
                measure(
                    "baseline",
                    [python, "-m", "uvicorn", "baseline_app:app", *uvicorn_flags],
                    env,
                    tmp,
                    args,
                    port,
                )
            )
            config = {
                "store_url": f"sqlite:///{tmp / f'bench{n}.db'}",
                "pdc_url": "http://127.0.0.1:9",
                "log_level": "warning",
                "resume": {"delay": 3600},
                "worker": {"enabled": args.with_worker},
                "mpyc": {"local_nodes": 0},
            }
            (tmp / "gateway.json").write_text(json.dumps(config))
            port = free_port()
            uvicorn_flags[uvicorn_flags.index("--port") + 1] = str(port)
            gateways.append(
                measure(
                    "gateway",
                    [
                        python,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "gateway.app:app_from_environment",
                        *uvicorn_flags,
                    ],
                    {**os.environ, "PTX_CONFIG": str(tmp / "gateway.json")},
                    tmp,
                    args,
                    port,
                )
            )
            jobs += _count_jobs(tmp / f"bench{n}.db")
            ratio = gateways[-1]["rps"] / baselines[-1]["rps"]
            print(
                f"round {n + 1}: baseline {baselines[-1]['rps']:.0f} req/s "
                f"({baselines[-1]['cpu_us']:.0f} us CPU/req), "
                f"gateway {gateways[-1]['rps']:.0f} req/s "
                f"({gateways[-1]['cpu_us']:.0f} us CPU/req), ratio {ratio:.2f}",
                flush=True,
            )
    baseline, gateway = median_row(baselines), median_row(gateways)
    ratio = gateway["rps"] / baseline["rps"]
    ratios = sorted(g["rps"] / b["rps"] for g, b in zip(gateways, baselines, strict=True))
    print(
        f"\n{'median':10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'CPU us/req':>11}"
    )
    for name, row, rows in (("baseline", baseline, baselines), ("gateway", gateway, gateways)):
        cpu = sorted(r["cpu_us"] for r in rows)[len(rows) // 2]
        print(
            f"{name:10} {row['rps']:10.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{row['errors']:8.0f} {cpu:11.0f}"
        )
    print(f"uvicorn: {implementations(args.loop, args.http)} (both sides)")
    print(f"jobs stored durably: {jobs} (every ACK is a committed row)")
    print(
        f"ratio gateway/baseline: {ratio:.2f} (per round {', '.join(f'{r:.2f}' for r in ratios)};"
        f" goal >= 0.70)"
    )
    return 0


def implementations(loop: str, http: str) -> str:
    """What uvicorn's ``auto`` choices resolve to in this environment."""
    import importlib.util

    def have(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    if loop == "auto":
        loop = "uvloop" if have("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if have("httptools") else "h11"
    return f"loop {loop}, http {http}"


def _count_jobs(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


if __name__ == "__main__":
    raise SystemExit(main())
