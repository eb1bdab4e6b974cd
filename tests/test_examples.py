"""The examples/ files load, validate and agree with each other (so none of them can rot)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from gateway.cli import main
from gateway.settings import Settings, load_settings
from ptx_chain_node.chains.config import ChainFile, check_chain_file, load_chain_file
from ptx_chain_node.chains.contracts import catalog_ids_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHAIN_FILES = sorted((EXAMPLES / "chains").glob("*.toml"))


def read_json(relative: str) -> dict[str, Any]:
    data = json.loads((EXAMPLES / relative).read_text())
    assert isinstance(data, dict)
    return data


@cache
def gateway() -> Settings:
    return load_settings(EXAMPLES / "gateway.toml")


@cache
def chains() -> dict[str, ChainFile]:
    return {path.name: load_chain_file(path) for path in CHAIN_FILES}


def test_every_json_example_parses() -> None:
    files = sorted(EXAMPLES.rglob("*.json"))
    assert len(files) >= 8
    for path in files:
        json.loads(path.read_text())


@pytest.mark.parametrize("path", CHAIN_FILES, ids=lambda p: p.name)
def test_chain_configurations_pass_config_check(path: Path) -> None:
    assert check_chain_file(path) == []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["config", "check", str(path)]) == 0
    assert out.getvalue().strip().endswith(": ok")


def test_use_case_chains_use_fixed_point_columns() -> None:
    assert len(CHAIN_FILES) >= 3
    for name in ("hospital-length-of-stay.toml", "energy-consumption.toml"):
        (config,) = chains()[name].chains
        assert any(c.type == "fixed" and c.scale for c in config.input.columns), name


def test_gateway_config_loads_with_an_mpc_resource() -> None:
    settings = gateway()
    (resource,) = settings.resources
    assert resource.processor == "mpc" and resource.mode == "async"
    assert resource.auth.api_key_header and resource.auth.api_key is not None
    assert resource.chains is not None
    chain_file = EXAMPLES.parent / resource.chains
    assert chain_file.name in chains()


def test_software_resource_points_at_the_gateway_with_the_pdc_credential() -> None:
    resource = read_json("catalog/software-resource.json")
    representation = resource["representation"]
    assert representation["method"] == "apiKey"
    assert urlparse(representation["url"]).path in {r.path for r in gateway().resources}
    credential = read_json("pdc/credential.json")
    created = credential["response"]
    assert representation["credential"] == created["_id"]
    header = representation["credentialHeader"]
    (auth,) = (r.auth for r in gateway().resources)
    assert auth.api_key is not None
    for item in (credential["request"], created, header):
        key = item.get("key", item.get("name"))
        assert (key, item["value"]) == (auth.api_key_header, auth.api_key.get_secret_value())
    assert credential["request"]["type"] == "apiKey"


def test_pdc_snippet_matches_the_gateway() -> None:
    snippet = read_json("pdc/config-snippet.json")
    assert snippet["serviceChainAdapter"] is False  # the gateway resource is async
    assert all(r.mode == "async" for r in gateway().resources)
    limit = re.fullmatch(r"(\d+)mb", snippet["expressLimitSize"])
    assert limit is not None
    assert gateway().resume.max_body_bytes <= int(limit.group(1)) * 1024 * 1024
    (credential,) = snippet["credentials"]
    assert credential == read_json("pdc/credential.json")["response"]


def test_service_offering_is_a_configured_target() -> None:
    offering = read_json("catalog/service-offering.json")
    software = read_json("catalog/software-resource.json")
    assert software["_id"] in offering["aggregationOf"]
    targets = {t for f in chains().values() for c in f.chains for t in c.target_ids}
    assert offering["@id"] in targets


def test_contract_service_chain_matches_a_chain_configuration() -> None:
    contract = read_json("contract/service-chain.json")
    (entry,) = contract["serviceChains"]
    assert len(entry["services"]) == 3  # provider, MPC node, consumer
    mpc_service = entry["services"][1]["service"]
    # The gateway's own matching: the catalogIds whose services include the target.
    assert catalog_ids_for(contract, mpc_service) == [entry["catalogId"]]
    matching = [
        c
        for f in chains().values()
        for c in f.chains
        if entry["catalogId"] in c.catalog_ids and mpc_service in c.target_ids
    ]
    assert [c.name for c in matching] == ["hospital-length-of-stay"]
    assert read_json("catalog/service-offering.json")["@id"] == mpc_service


# -- examples/deployment.md: every quoted command exists -------------------------------------


@cache
def help_of(path: tuple[str, ...]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*path, "--help"])
    return out.getvalue()


def quoted_commands(markdown: str) -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "ptx-chain-node":
                commands.append(words[1:])
    return commands


def test_deployment_guide_quotes_only_existing_commands_and_flags() -> None:
    guide = (EXAMPLES / "deployment.md").read_text()
    commands = quoted_commands(guide)
    assert len(commands) >= 6
    seen: set[tuple[str, ...]] = set()
    for words in commands:
        path: list[str] = []
        for word in words:
            usage = help_of(tuple(path)).split("\n\n", 1)[0]
            choices = re.search(r"\{([^}]*)\}", usage)
            if word.startswith("-") or choices is None or word not in choices.group(1).split(","):
                break
            path.append(word)
        assert path, f"not a ptx-chain-node command: {words}"
        text = help_of(tuple(path))
        for word in words:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                assert re.search(rf"{re.escape(flag)}\b", text), f"{flag} not in {path} help"
        seen.add(tuple(path))
    assert {("node",), ("serve",), ("jobs", "retry"), ("config", "check")} <= seen
    assert "--ssl" in guide and "PostgreSQL" in guide
