"""Every native route with its errors: 404, duplicates, bad spec, bad token, wrong party."""

from __future__ import annotations

from typing import Any

import pytest
from coordination_harness import OP, Harness, auth, collaboration_body
from pytest_httpx import HTTPXMock

P = "/v1/collaborations"
MISSING = "00000000-0000-4000-8000-000000000000"


def fields(response: Any) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


async def test_create_requires_the_operator_token(harness: Harness) -> None:
    r = await harness.client.post(P, json=collaboration_body())
    assert r.status_code == 401 and r.json()["code"] == 401
    r = await harness.client.post(P, json=collaboration_body(), headers=auth("wrong"))
    assert r.status_code == 401
    assert (await harness.client.get(P)).json() == {"collaborations": []}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"program": {"name": "nope", "version": "1"}}, "program"),
        (
            {"program": {"name": "sum", "version": "1", "parameters": {"x": 1}}},
            "program.parameters.x",
        ),
        ({"engine": "quantum"}, "engine"),
        ({"compute_config": {"bogus": 1}}, "compute_config.bogus"),
        ({"input_specification": {"columns": []}}, "body.input_specification.columns"),
        (
            {"input_specification": {"columns": [{"name": "x", "type": "fixed"}]}},
            "body.input_specification.columns.0",
        ),
        (
            {
                "input_specification": {
                    "columns": [{"name": "x", "type": "categorical", "categories": ["a"]}]
                }
            },
            "body.input_specification.columns.0",
        ),
        ({"deadline": "2001-01-01T00:00:00+00:00"}, "deadline"),
        (
            {"output_parties": [{"id": "o", "endpoint": "ftp://x"}]},
            "body.output_parties.0.endpoint",
        ),
        ({"input_parties": [], "number_of_parties": None}, "body"),
    ],
)
async def test_create_rejects_a_bad_definition(
    harness: Harness, override: dict[str, Any], field: str
) -> None:
    r = await harness.client.post(P, json=collaboration_body(**override), headers=OP)
    assert r.status_code == 422, r.text
    assert field in fields(r)
    assert (await harness.client.get(P)).json() == {"collaborations": []}


async def test_create_rejects_a_categorical_column_for_sum(harness: Harness) -> None:
    spec = {"columns": [{"name": "x", "type": "categorical", "categories": ["a", "b"]}]}
    r = await harness.client.post(P, json=collaboration_body(input_specification=spec), headers=OP)
    assert r.status_code == 422 and "input_specification.columns" in fields(r)


async def test_bad_json_is_a_400(harness: Harness) -> None:
    r = await harness.client.post(P, content=b"{nope", headers=OP)
    assert r.status_code == 400 and fields(r) == {"body"}


async def test_get_list_status_and_404s(harness: Harness) -> None:
    created = await harness.create()
    cid = created["id"]
    assert created["program"]["sha256"] and "token" in created["output_parties"][0]
    got = (await harness.client.get(f"{P}/{cid}")).json()
    assert got["state"] == "open" and got["csv_header"] == "stays,cost"
    assert "token" not in str(got) and "notify_secret" not in str(got)
    listed = (await harness.client.get(P, params={"state": "open"})).json()["collaborations"]
    assert [c["id"] for c in listed] == [cid]
    assert (await harness.client.get(P, params={"state": "weird"})).status_code == 422
    status = (await harness.client.get(f"{P}/{cid}/status")).json()
    assert status["expected_parties"] == 3 and status["output_parties"] == 1
    for path in ("", "/status", "/results", "/parties", "/compute-config"):
        r = await harness.client.get(f"{P}/{MISSING}{path}", headers=OP)
        assert r.status_code == 404, path
    r = await harness.client.post(f"{P}/{MISSING}/input-parties/a")
    assert r.status_code == 404


async def test_delete_needs_the_operator_and_forgets_everything(harness: Harness) -> None:
    cid = (await harness.create())["id"]
    await harness.register(cid, "a")
    assert (await harness.client.delete(f"{P}/{cid}")).status_code == 401
    assert (await harness.client.delete(f"{P}/{cid}", headers=OP)).status_code == 204
    assert (await harness.client.get(f"{P}/{cid}")).status_code == 404
    assert (await harness.client.delete(f"{P}/{cid}", headers=OP)).status_code == 404


async def test_input_registration_answers_spec_program_and_config(harness: Harness) -> None:
    created = await harness.create()
    cid = created["id"]
    body = await harness.register(cid, "a")
    assert body["token"].startswith("ptxp_")
    assert body["identity"] == "did:web:a.example"
    assert body["program_sha256"] == created["program"]["sha256"]
    assert body["input_specification"]["columns"][1] == {
        "name": "cost",
        "type": "fixed",
        "scale": 2,
    }
    assert body["compute_config"]["engine"] == "local"
    # Duplicate: 208 without the token, 200 (no new token) with it; never 500.
    again = await harness.client.post(f"{P}/{cid}/input-parties/a")
    assert again.status_code == 208 and "token" not in again.json()
    mine = await harness.client.post(f"{P}/{cid}/input-parties/a", headers=auth(body["token"]))
    assert mine.status_code == 200 and "token" not in mine.json()
    # Not an expected party (the collaboration is bound to identities).
    r = await harness.client.post(f"{P}/{cid}/input-parties/mallory")
    assert r.status_code == 403 and "path.party_id" in fields(r)


async def test_operator_registration_policy(harness: Harness) -> None:
    cid = (await harness.create(registration="operator"))["id"]
    assert (await harness.client.post(f"{P}/{cid}/input-parties/a")).status_code == 401
    r = await harness.client.post(f"{P}/{cid}/input-parties/a", headers=OP)
    assert r.status_code == 201 and r.json()["token"]


async def test_unregister_by_party_or_operator_only(harness: Harness) -> None:
    cid = (await harness.create())["id"]
    await harness.register(cid, "a")
    b = await harness.register(cid, "b")
    url = f"{P}/{cid}/input-parties/a"
    assert (await harness.client.delete(url)).status_code == 401
    assert (await harness.client.delete(url, headers=auth(b["token"]))).status_code == 403
    assert (await harness.client.delete(url, headers=auth(harness.tokens["a"]))).status_code == 204
    assert (await harness.client.delete(url, headers=OP)).status_code == 404
    assert (
        await harness.client.delete(f"{P}/{cid}/input-parties/b", headers=OP)
    ).status_code == 204


async def test_approval_checks_hash_and_party(harness: Harness) -> None:
    created = await harness.create(approval="explicit")
    cid, sha = created["id"], created["program"]["sha256"]
    await harness.register(cid, "a")
    await harness.register(cid, "b")
    r = await harness.approve(cid, "a", "0" * 64)
    assert r.status_code == 422 and fields(r) == {"program_sha256"}
    r = await harness.client.post(
        f"{P}/{cid}/input-parties/a/approval",
        json={"program_sha256": sha},
        headers=auth(harness.tokens["b"]),
    )
    assert r.status_code == 403
    r = await harness.client.post(
        f"{P}/{cid}/input-parties/a/approval", json={"program_sha256": "x"}
    )
    assert r.status_code == 422
    assert (await harness.approve(cid, "a", sha)).status_code == 200


async def test_no_run_without_every_approval(harness: Harness, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify")
    created = await harness.create(approval="explicit")
    cid, sha = created["id"], created["program"]["sha256"]
    for pid in "abc":
        await harness.register(cid, pid)
        assert (await harness.upload(cid, pid, [[1, 1]])).status_code == 200
    await harness.coordinator.idle()
    assert await harness.state(cid) == "ready"
    assert harness.engine.runs_started == 0
    for pid in "ab":
        await harness.approve(cid, pid, sha)
    assert await harness.state(cid) == "ready"
    await harness.approve(cid, "c", sha)
    await harness.coordinator.idle()
    assert await harness.state(cid) == "done"
    assert harness.engine.runs_started == 1


async def test_upload_is_checked_idempotent_and_party_bound(harness: Harness) -> None:
    cid = (await harness.create())["id"]
    await harness.register(cid, "a")
    await harness.register(cid, "b")
    url = f"{P}/{cid}/input-parties/a/upload"
    ids = [harness.engine.share([1, 2]), harness.engine.share([3, 4])]
    good = {"secret_ids": ids, "rows": 2}
    assert (await harness.client.post(url, json=good)).status_code == 401
    assert (
        await harness.client.post(url, json=good, headers=auth("ptxp_forged"))
    ).status_code == 403
    r = await harness.client.post(url, json=good, headers=auth(harness.tokens["b"]))
    assert r.status_code == 403
    a = auth(harness.tokens["a"])
    r = await harness.client.post(url, json={"secret_ids": ids, "rows": 101}, headers=a)
    assert r.status_code == 422 and "rows" in fields(r)
    r = await harness.client.post(url, json={"secret_ids": [ids[0], ids[0]], "rows": 2}, headers=a)
    assert r.status_code == 422 and "secret_ids" in fields(r)
    r = await harness.client.post(url, json={"secret_ids": ["bad id!"], "rows": 2}, headers=a)
    assert r.status_code == 422 and "secret_ids.0" in fields(r)
    r = await harness.client.post(url, json={"secret_ids": [ids[0]], "rows": 2}, headers=a)
    assert r.status_code == 422 and "secret_ids" in fields(r)  # the engine wants one per column
    r = await harness.client.post(
        url, json={"secret_ids": ["unknown", ids[1]], "rows": 2}, headers=a
    )
    assert r.status_code == 422 and "secret_ids.0" in fields(r)
    r = await harness.client.post(url, json={**good, "program_sha256": "1" * 64}, headers=a)
    assert r.status_code == 422 and fields(r) == {"program_sha256"}
    first = await harness.client.post(url, json=good, headers=a)
    assert first.status_code == 200 and first.json()["new"] is True
    again = await harness.client.post(url, json=good, headers=a)
    assert again.status_code == 200 and again.json()["new"] is False
    other = [harness.engine.share([9, 9]), harness.engine.share([9, 9])]
    r = await harness.client.post(url, json={"secret_ids": other, "rows": 2}, headers=a)
    assert r.status_code == 409
    status = (await harness.client.get(f"{P}/{cid}/status")).json()
    assert status["confirmed_uploads"] == 1


async def test_output_party_registration_and_results_access(
    harness: Harness, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify")
    httpx_mock.add_response(method="PUT", url="http://second.test/notify")
    cid = (await harness.create())["id"]
    url = f"{P}/{cid}/output-parties/second"
    body = {"endpoint": "http://second.test"}
    assert (await harness.client.post(url, json=body)).status_code == 401
    r = await harness.client.post(url, json={"endpoint": "http://u:p@x.test"}, headers=OP)
    assert r.status_code == 422
    created = await harness.client.post(url, json=body, headers=OP)
    assert created.status_code == 201
    second = created.json()
    assert second["token"] and len(second["notify_secret"]) >= 16
    assert (await harness.client.post(url, json=body, headers=OP)).status_code == 208
    results = f"{P}/{cid}/results"
    assert (await harness.client.get(results, headers=auth(second["token"]))).status_code == 409
    for pid in "abc":
        await harness.register(cid, pid)
        await harness.upload(cid, pid, [[2, 5]])
    await harness.coordinator.idle()
    assert (await harness.client.get(results)).status_code == 401
    assert (await harness.client.get(results, headers=OP)).status_code == 403
    r = await harness.client.get(results, headers=auth(harness.tokens["a"]))
    assert r.status_code == 403
    r = await harness.client.get(results, headers=auth(second["token"]))
    assert r.status_code == 200
    assert [harness.engine.open(i)[0] for i in r.json()["result_ids"]] == [6, 15]
    deliveries = (await harness.client.get(f"{P}/{cid}/notifications", headers=OP)).json()
    assert sorted(n["party_id"] for n in deliveries["notifications"]) == ["out", "second"]
    assert all(n["state"] == "delivered" for n in deliveries["notifications"])
    assert (await harness.client.get(f"{P}/{cid}/notifications")).status_code == 401
    # A finished collaboration takes no more parties or uploads, and can be deleted.
    assert (
        await harness.client.post(f"{P}/{cid}/output-parties/late", json=body, headers=OP)
    ).status_code == 409
    assert (
        await harness.client.delete(f"{P}/{cid}/input-parties/a", headers=OP)
    ).status_code == 409


async def test_parties_and_compute_config_need_membership(harness: Harness) -> None:
    cid = (await harness.create())["id"]
    await harness.register(cid, "a")
    for path in ("/parties", "/compute-config"):
        assert (await harness.client.get(f"{P}/{cid}{path}")).status_code == 401
        assert (await harness.client.get(f"{P}/{cid}{path}", headers=auth("x"))).status_code == 403
        r = await harness.client.get(f"{P}/{cid}{path}", headers=auth(harness.tokens["a"]))
        assert r.status_code == 200
    parties = (await harness.client.get(f"{P}/{cid}/parties", headers=OP)).json()["parties"]
    assert {p["party_id"] for p in parties} == {"a", "out"}
    assert "token" not in str(parties) and "secret" not in str(parties).replace("secret_ids", "")


async def test_failed_run_is_failed_and_notified(harness: Harness, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify")
    harness.engine.fail_with = "node 2 unreachable"
    cid = (await harness.create())["id"]
    for pid in "abc":
        await harness.register(cid, pid)
        await harness.upload(cid, pid, [[1, 1]])
    await harness.coordinator.idle()
    assert await harness.state(cid) == "failed"
    r = await harness.client.get(f"{P}/{cid}/results", headers=auth(harness.tokens["out:out"]))
    assert r.status_code == 409 and "node 2 unreachable" in str(r.json())
    assert b'"code":500' in httpx_mock.get_requests()[0].content


async def test_openapi_lists_the_coordinator_paths(harness: Harness) -> None:
    paths = (await harness.client.get("/openapi.json")).json()["paths"]
    for path in (
        P,
        P + "/{cid}/input-parties/{pid}/upload",
        "/collaboration",
        "/collaboration/{cid}/register-output-party/{pid}",
        "/confirm-upload/{cid}/{pid}",
        "/collaboration/{cid}/result_ids",
    ):
        assert path in paths, path
