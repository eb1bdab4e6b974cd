"""Checked-in schemas and OpenAPI match the models; the core stays transport-free."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import httpx

from gateway import schemas
from gateway.app import create_app
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_checked_in_schemas_match_the_models() -> None:
    stale = schemas.drift(ROOT / "schemas")
    assert stale == [], f"run `ptx-chain-node schemas`: {stale} drifted"


def test_drift_is_detected(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    assert schemas.drift(tmp_path) == []
    (tmp_path / "ack.schema.json").write_text("{}\n")
    (tmp_path / "openapi.json").unlink()
    assert sorted(schemas.drift(tmp_path)) == ["ack.schema.json", "openapi.json"]


async def test_served_openapi_is_the_checked_in_one(tmp_path: Path) -> None:
    app = create_app(Settings(store_url=f"sqlite:///{tmp_path / 'x.db'}"), configure_logging=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        served = (await client.get("/openapi.json")).json()
    assert served == json.loads((ROOT / "schemas" / "openapi.json").read_text())
    assert "/resource" in served["paths"] and "/jobs/{job_id}" in served["paths"]


def test_core_never_imports_starlette() -> None:
    offenders = []
    for path in (ROOT / "ptx_chain_node").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("starlette", "gateway") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
