"""A full native flow: create, register, upload, run, notify, results."""

from __future__ import annotations

import json

from coordination_harness import Harness, auth
from pytest_httpx import HTTPXMock

from ptx_chain_node.coordination import verify_signature


async def test_full_round_trip_computes_the_sum_and_notifies(
    harness: Harness, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify", status_code=204)
    created = await harness.create()
    cid = created["id"]
    data = {"a": [[1, 150], [2, 250]], "b": [[3, 1000]], "c": [[4, 5], [5, 5], [6, 5]]}
    for pid in data:
        await harness.register(cid, pid)
    for pid, rows in data.items():
        response = await harness.upload(cid, pid, rows)
        assert response.status_code == 200, response.text
    await harness.coordinator.idle()
    assert await harness.state(cid) == "done"

    response = await harness.client.get(
        f"/v1/collaborations/{cid}/results", headers=auth(harness.tokens["out:out"])
    )
    assert response.status_code == 200, response.text
    ids = response.json()["result_ids"]
    expected = [
        sum(r[0] for rs in data.values() for r in rs),
        sum(r[1] for rs in data.values() for r in rs),
    ]
    assert [harness.engine.open(i)[0] for i in ids] == expected

    request = httpx_mock.get_requests()[-1]
    body = json.loads(request.content)
    assert body == {
        "message": "Success",
        "code": 200,
        "collaborationId": cid,
        "secretId": ids[0],
        "secretIds": ids,
        "state": "done",
    }
    secret = created["output_parties"][0]["notify_secret"]
    assert verify_signature(
        secret,
        request.headers["x-ptx-timestamp"],
        request.content,
        request.headers["x-ptx-signature"],
    )
