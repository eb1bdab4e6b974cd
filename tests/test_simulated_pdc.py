"""The simulated PDC drives a chain resource as the real PDC does (quirks included)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ptx_chain_node.chain import parse_chain_context
from ptx_chain_node.payload import decode_json, parse_payload, split_credentials, threads
from ptx_chain_node.testing import (
    ChainSpec,
    ChainStep,
    DataSource,
    HostRoutingTransport,
    Participant,
    Representation,
    ResumeOutcome,
    ServerThread,
    SimulatedPDC,
    StepState,
    serve,
    simple_chain,
)
from ptx_chain_node.testing.asgi import Receive, Scope, Send, decoded_headers, read_body

if TYPE_CHECKING:
    from ptx_chain_node.testing.fixtures import LivePDC

pytest_plugins = ["ptx_chain_node.testing.fixtures"]

CHAIN_ID_RE = re.compile(r"^@supervisor:[0-9a-f]{128}-\d{13}-[0-9a-f]{8}$")
NODE = "https://catalog.test/v1/catalog/serviceofferings/node"
NODE_B = "https://catalog.test/v1/catalog/serviceofferings/node-b"
CONSUMER = "https://catalog.test/v1/catalog/serviceofferings/consumer"


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Resource:
    """A tiny chain resource: records, ACKs, then resumes its PDC over HTTP after a delay.

    ``result(body) -> (data, params)`` computes the resume; ``resume_delay=None`` never resumes.
    """

    client: httpx.AsyncClient
    pdc_url: str = ""
    resume_delay: float | None = 0.3
    ack: Any = field(default_factory=lambda: {"status": "accepted"})
    status: int = 200
    result: Callable[[Any], tuple[Any, Any]] = lambda body: ({"sum": 42}, {"k": "v"})
    received: list[Received] = field(default_factory=list)
    resume_answers: list[httpx.Response] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await read_body(scope, receive, 10 * 1024 * 1024)
        item = Received(scope["method"], scope["path"], decoded_headers(scope), raw)
        self.received.append(item)
        payload = json.dumps(self.ack).encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        if self.resume_delay is not None and item.header("x-ptx-service-chain-next-target"):
            task = asyncio.get_running_loop().create_task(self._resume(item))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _resume(self, item: Received) -> None:
        assert self.resume_delay is not None
        await asyncio.sleep(self.resume_delay)
        data, params = self.result(item.json)
        body = {
            "chainId": item.header("x-ptx-service-chain-id"),
            "targetId": item.header("x-ptx-target-id"),
            "data": data,
            "params": params,
        }
        self.resume_answers.append(
            await self.client.post(f"{self.pdc_url}/service-chain/resume", json=body)
        )

    async def aclose(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


@pytest.fixture
async def resource(client: httpx.AsyncClient) -> AsyncIterator[tuple[Resource, str]]:
    """The test resource under uvicorn; yields it and its URL."""
    app = Resource(client)
    async with serve(app, lifespan="off") as server:
        yield app, server.url + "/chain"
        await app.aclose()


# --------------------------------------------------------------------- headers and body
async def test_mixed_case_headers_and_text_plain_on_the_wire(simulated_pdc: LivePDC) -> None:
    """A raw socket sees the PDC's exact header case and the text/plain label on JSON."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        seen.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    raw_server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = raw_server.sockets[0].getsockname()[1]
    try:
        pdc = simulated_pdc.pdc
        pdc.config.db_delay = 0.0
        chain_id = await pdc.start_chain(simple_chain(f"http://127.0.0.1:{port}/chain"))
    finally:
        raw_server.close()
        await raw_server.wait_closed()

    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /chain HTTP/1.1"
    names = {line.split(":", 1)[0] for line in lines[1:]}
    for name in (
        "x-ptx-service-chain-id",
        "x-ptx-target-id",
        "x-ptx-service-chain-next-target",
        "x-ptx-incomingDataspaceConnectorURI",
        "x-ptx-dataExchangeId",
        "x-ptx-contractId",
        "x-ptx-contractURL",
    ):
        assert name in names, name
    assert "x-ptx-service-chain-previous-target" not in names  # no pre-chain
    assert "content-type: text/plain" in lines
    assert "authorization" not in {n.lower() for n in names}
    assert CHAIN_ID_RE.match(chain_id)
    context = parse_chain_context([tuple(line.split(": ", 1)) for line in lines[1:]])
    assert context.chain_id == chain_id
    assert context.target_id == NODE
    assert context.next_target == CONSUMER
    assert context.incoming_connector_uri == simulated_pdc.url + "/"
    assert json.loads(body)["data"] == [{"id": 1, "value": 10}]


@pytest.mark.parametrize(
    ("catalog", "sent"),
    [({"custom": "custom"}, "custom"), ({}, ""), (None, ""), ({"a": "1", "b": "2"}, 12)],
)
async def test_params_are_joined_like_the_pdc(
    simulated_pdc: LivePDC,
    resource: tuple[Resource, str],
    catalog: dict[str, Any] | None,
    sent: Any,
) -> None:
    app, url = resource
    app.resume_delay = None
    await simulated_pdc.pdc.start_chain(simple_chain(url, params=catalog))
    assert app.received[0].json["params"] == sent


async def test_basic_credentials_go_into_the_body(
    simulated_pdc: LivePDC, resource: tuple[Resource, str]
) -> None:
    app, url = resource
    app.resume_delay = None
    spec = simple_chain(url, method="basic", username="alice", password="s3cret")
    await simulated_pdc.pdc.start_chain(spec)
    got = app.received[0]
    assert got.header("authorization") is None
    assert got.json["username"] == "alice"
    assert got.json["password"] == "s3cret"
    stripped, credentials = split_credentials(decode_json(got.raw))
    assert credentials is not None
    assert credentials.username == "alice"
    assert set(stripped) == {"data", "contract", "params"}


async def test_api_key_header_and_put_for_user_id(
    simulated_pdc: LivePDC, resource: tuple[Resource, str]
) -> None:
    app, url = resource
    app.resume_delay = None
    spec = simple_chain(
        url + "/{userId}",
        method="apiKey",
        api_key_header="x-gateway-key",
        api_key="k-123",
        content_type="application/json",
    )
    await simulated_pdc.pdc.start_chain(spec)
    got = app.received[0]
    assert (got.method, got.path) == ("PUT", "/chain/user-1")
    assert got.header("x-gateway-key") == "k-123"
    assert got.header("content-type") == "application/json"
    assert "username" not in got.json


async def test_skip_body_processing_sends_only_data(
    simulated_pdc: LivePDC, resource: tuple[Resource, str]
) -> None:
    app, url = resource
    app.resume_delay = None
    await simulated_pdc.pdc.start_chain(
        simple_chain(url, data={"rows": [1, 2]}, skip_body_processing=True)
    )
    body = app.received[0].json
    assert body == {"rows": [1, 2]}
    payload = parse_payload(body, skip_body_processing=True)
    assert not payload.wrapped


# --------------------------------------------------------------------- suspension and resume
async def test_early_resume_is_dropped_and_the_chain_goes_on_with_the_ack(
    pdc_factory: Any, resource: tuple[Resource, str]
) -> None:
    live: LivePDC = await pdc_factory(db_delay=0.4)
    app, url = resource
    app.pdc_url, app.resume_delay = live.url, 0.0  # resumes right after the ACK: too early
    chain_id = await live.pdc.start_chain(simple_chain(url))
    out = await live.pdc.wait_for_output(chain_id, timeout=5)
    assert [r.outcome for r in live.pdc.resumes_for(chain_id)] == [ResumeOutcome.DROPPED_EARLY]
    assert app.resume_answers[0].status_code == 200
    assert app.resume_answers[0].json() == {"message": "Node resumed successfully"}
    assert out.data == {"status": "accepted"}  # the synchronous ACK, not the result
    assert live.pdc.step_state(chain_id, NODE) is StepState.CONTINUED


async def test_resume_after_suspension_forwards_with_previous_node_params(
    pdc_factory: Any, resource: tuple[Resource, str]
) -> None:
    live: LivePDC = await pdc_factory(db_delay=0.05)
    app, url = resource
    app.pdc_url, app.resume_delay = live.url, 0.3
    app.result = lambda body: ({"seen": body["data"]}, {"k": body.get("previousNodeParams")})
    spec = ChainSpec(
        source=DataSource(data=[1, 2, 3]),
        nodes=[
            ChainStep(offering=NODE, representation=Representation(url=url), params={"p": "a"}),
            ChainStep(offering=NODE_B, representation=Representation(url=url + "/b")),
        ],
        consumer=ChainStep(offering=CONSUMER),
    )
    chain_id = await live.pdc.start_chain(spec)
    out = await live.pdc.wait_for_output(chain_id, timeout=5)

    first, second = app.received
    assert "previousNodeParams" not in first.json
    assert second.json["data"] == {"seen": [1, 2, 3]}
    assert second.json["previousNodeParams"] == {"k": None}
    assert second.header("x-ptx-service-chain-next-target") == CONSUMER
    assert second.header("x-ptx-dataExchangeId") == first.header("x-ptx-dataExchangeId")
    assert out.data == {"seen": {"seen": [1, 2, 3]}}
    assert out.body["previousNodeParams"] == {"k": {"k": None}}
    outcomes = [r.outcome for r in live.pdc.resumes_for(chain_id)]
    assert outcomes == [ResumeOutcome.RESUMED, ResumeOutcome.RESUMED]
    assert live.pdc.duplicates == []


@pytest.mark.parametrize("params", ["", None, 0])
async def test_falsy_resume_params_send_no_previous_node_params(
    simulated_pdc: LivePDC, resource: tuple[Resource, str], params: Any
) -> None:
    app, url = resource
    app.pdc_url, app.resume_delay = simulated_pdc.url, 0.2
    app.result = lambda body: ("done", params)
    chain_id = await simulated_pdc.pdc.start_chain(simple_chain(url))
    out = await simulated_pdc.pdc.wait_for_output(chain_id, timeout=5)
    assert out.body == {"data": "done", "contract": out.body["contract"], "params": ""}


async def test_resume_of_unknown_chain_answers_200(
    simulated_pdc: LivePDC, client: httpx.AsyncClient
) -> None:
    body = {"chainId": "@supervisor:nope", "targetId": NODE, "data": 1, "params": {}}
    r = await client.post(simulated_pdc.url + "/service-chain/resume", json=body)
    assert r.status_code == 200
    assert r.json() == {"message": "Node resumed successfully"}
    (record,) = simulated_pdc.pdc.resumes
    assert (record.chain_id, record.outcome) == ("@supervisor:nope", ResumeOutcome.UNKNOWN)


async def test_resume_after_restart_answers_500(
    simulated_pdc: LivePDC, resource: tuple[Resource, str], client: httpx.AsyncClient
) -> None:
    pdc = simulated_pdc.pdc
    app, url = resource
    app.resume_delay = None
    chain_id = await pdc.start_chain(simple_chain(url))
    await pdc.wait_for_state(chain_id, NODE, StepState.SUSPENDED, timeout=5)
    pdc.restart()
    body = {"chainId": chain_id, "targetId": NODE, "data": 1}
    r = await client.post(simulated_pdc.url + "/service-chain/resume", json=body)
    assert r.status_code == 500
    assert pdc.resumes[-1].outcome is ResumeOutcome.ERROR
    assert pdc.outputs == []


async def test_body_over_the_limit_answers_413(
    simulated_pdc: LivePDC, client: httpx.AsyncClient
) -> None:
    big = {"chainId": "c", "targetId": "t", "data": "x" * (2 * 1024 * 1024)}
    r = await client.post(simulated_pdc.url + "/service-chain/resume", json=big)
    assert r.status_code == 413
    small = {"chainId": "c", "targetId": "t", "data": "x" * (1024 * 1024)}
    r = await client.post(simulated_pdc.url + "/service-chain/resume", json=small)
    assert r.status_code == 200
    outcomes = [r.outcome for r in simulated_pdc.pdc.resumes]
    assert outcomes == [ResumeOutcome.TOO_LARGE, ResumeOutcome.UNKNOWN]


async def test_second_resume_is_a_duplicate_and_forwards_again(
    simulated_pdc: LivePDC, resource: tuple[Resource, str], client: httpx.AsyncClient
) -> None:
    pdc = simulated_pdc.pdc
    app, url = resource
    app.resume_delay = None  # the test resumes by hand
    chain_id = await pdc.start_chain(simple_chain(url))
    await pdc.wait_for_state(chain_id, NODE, StepState.SUSPENDED, timeout=5)
    body = {"chainId": chain_id, "targetId": NODE, "data": {"r": 1}, "params": {}}
    for _ in range(2):
        r = await client.post(simulated_pdc.url + "/service-chain/resume", json=body)
        assert r.status_code == 200
    outcomes = [r.outcome for r in pdc.resumes_for(chain_id, NODE)]
    assert outcomes == [ResumeOutcome.RESUMED, ResumeOutcome.DUPLICATE]
    assert len(pdc.duplicates) == 1
    assert [o.data for o in pdc.outputs] == [{"r": 1}, {"r": 1}]
    assert pdc.outputs[0].body["previousNodeParams"] == {}  # {} is truthy in JavaScript


async def test_status_report_is_not_a_resume(
    simulated_pdc: LivePDC, resource: tuple[Resource, str], client: httpx.AsyncClient
) -> None:
    pdc = simulated_pdc.pdc
    app, url = resource
    app.resume_delay = None
    chain_id = await pdc.start_chain(simple_chain(url))
    await pdc.wait_for_state(chain_id, NODE, StepState.SUSPENDED, timeout=5)
    body = {"chainId": chain_id, "targetId": NODE, "data": 1, "hostURI": "https://other"}
    r = await client.post(simulated_pdc.url + "/service-chain/resume", json=body)
    assert r.status_code == 200
    assert pdc.resumes[-1].outcome is ResumeOutcome.STATUS_REPORT
    assert pdc.step_state(chain_id, NODE) is StepState.SUSPENDED


async def test_non_2xx_answer_still_suspends_the_node(
    simulated_pdc: LivePDC, resource: tuple[Resource, str]
) -> None:
    pdc = simulated_pdc.pdc
    app, url = resource
    app.pdc_url, app.status, app.resume_delay = simulated_pdc.url, 500, 0.2
    chain_id = await pdc.start_chain(simple_chain(url))
    out = await pdc.wait_for_output(chain_id, timeout=5)
    assert pdc.calls_for(chain_id, NODE)[0].status == 500
    assert out.data == {"sum": 42}


async def test_unreachable_resource_fails_the_step(
    simulated_pdc: LivePDC, client: httpx.AsyncClient
) -> None:
    pdc = simulated_pdc.pdc
    async with serve(Resource(client), lifespan="off") as gone:
        url = gone.url + "/chain"
    chain_id = await pdc.start_chain(simple_chain(url))
    assert pdc.step_state(chain_id, NODE) is StepState.FAILED
    assert pdc.calls_for(chain_id)[0].error is not None
    assert pdc.errors


async def test_resume_answers_500_when_the_next_pdc_is_down(
    pdc_factory: Any, resource: tuple[Resource, str]
) -> None:
    node_pdc: LivePDC = await pdc_factory(db_delay=0.02)
    consumer: LivePDC = await pdc_factory()
    app, url = resource
    app.pdc_url, app.resume_delay = node_pdc.url, 0.2
    spec = simple_chain(url)
    spec.consumer.pdc_url = consumer.url
    await consumer.stop()
    chain_id = await node_pdc.pdc.start_chain(spec)
    await node_pdc.pdc.wait_until(lambda: bool(app.resume_answers), timeout=5)
    assert app.resume_answers[0].status_code == 500
    assert node_pdc.pdc.resumes_for(chain_id)[0].outcome is ResumeOutcome.ERROR


async def test_final_node_resource_gets_no_next_target(
    simulated_pdc: LivePDC, resource: tuple[Resource, str]
) -> None:
    pdc = simulated_pdc.pdc
    app, url = resource
    app.pdc_url, app.resume_delay = simulated_pdc.url, 0.2
    spec = simple_chain(url)
    spec.consumer.representation = Representation(url=url + "/final")
    spec.consumer.params = {"custom": "custom"}
    chain_id = await pdc.start_chain(spec)
    out = await pdc.wait_for_output(chain_id, timeout=5)
    final = app.received[1]
    assert final.path == "/chain/final"
    assert final.header("x-ptx-service-chain-next-target") is None
    assert parse_chain_context(final.headers).is_final
    assert final.json == out.body
    assert out.body == {
        "data": {"sum": 42},
        "contract": spec.contract_url,
        "params": "custom",
        "previousNodeParams": {"k": "v"},
    }
    await pdc.wait_until(lambda: bool(app.resume_answers), timeout=5)
    await asyncio.sleep(0.3)  # a resume of the final node would have come by now
    assert len(app.resume_answers) == 1  # the final node has nothing to resume


# --------------------------------------------------------------------- pre-chain and adapter
async def test_pre_chain_merge_shape(pdc_factory: Any, resource: tuple[Resource, str]) -> None:
    provider: LivePDC = await pdc_factory()
    extra_url = provider.pdc.serve_data("categories", {"category": ["A", "B"]})
    live: LivePDC = await pdc_factory()
    app, url = resource
    app.pdc_url, app.resume_delay = live.url, 0.2
    participant = Participant(name="Test-Infrastructure", connectorUrl=provider.url + "/", id="p1")
    pre = DataSource(
        offering="https://catalog.test/so/extra", url=extra_url, participant=participant
    )
    chain_id = await live.pdc.start_chain(simple_chain(url, data=[{"x": 1}], pre=[pre]))
    await live.pdc.wait_for_output(chain_id, timeout=5)

    got = app.received[0]
    assert got.json["data"] == {
        "origin": [{"x": 1}],
        "additionalData": [
            {
                "participant": {
                    "name": "Test-Infrastructure",
                    "connectorUrl": provider.url + "/",
                    "id": "p1",
                },
                "data": {"category": ["A", "B"]},
            }
        ],
    }
    assert got.header("x-ptx-service-chain-previous-target") == "https://catalog.test/so/extra"
    roles = [t.role for t in threads(parse_payload(got.json))]
    assert roles == ["origin", "additional"]
    (fetch,) = provider.pdc.data_requests
    assert fetch.header("x-ptx-service-chain-next-node") == NODE
    assert fetch.header("x-ptx-service-chain-id") == chain_id


@pytest.mark.parametrize(
    ("ack", "data", "prev"),
    [
        ({"data": {"mean": 3}, "params": {"n": 5}}, {"mean": 3}, {"n": 5}),
        ({"mean": 3}, {"mean": 3}, None),
    ],
)
async def test_adapter_mode_resumes_with_the_synchronous_answer(
    pdc_factory: Any, resource: tuple[Resource, str], ack: Any, data: Any, prev: Any
) -> None:
    live: LivePDC = await pdc_factory(adapter=True, adapter_timeout_ms=100, db_delay=0.02)
    app, url = resource
    app.ack, app.resume_delay = ack, None  # answers synchronously, never resumes
    chain_id = await live.pdc.start_chain(simple_chain(url))
    out = await live.pdc.wait_for_output(chain_id, timeout=5)
    assert out.data == data
    assert out.body.get("previousNodeParams") == prev
    (record,) = live.pdc.resumes_for(chain_id)
    assert (record.via, record.outcome) == ("adapter", ResumeOutcome.RESUMED)


# --------------------------------------------------------------------- several PDCs, modes
async def test_several_pdcs_make_one_chain_over_http(
    pdc_factory: Any, resource: tuple[Resource, str]
) -> None:
    provider: LivePDC = await pdc_factory()
    extra: LivePDC = await pdc_factory()
    node_pdc: LivePDC = await pdc_factory(db_delay=0.05)
    consumer: LivePDC = await pdc_factory()
    app, url = resource
    app.pdc_url, app.resume_delay = node_pdc.url, 0.2
    app.result = lambda body: (
        {"total": sum(body["data"]["origin"]) + body["data"]["additionalData"][0]["data"]},
        {"engine": "plain"},
    )
    spec = ChainSpec(
        source=DataSource(data=[1, 2, 3]),
        nodes=[
            ChainStep(
                offering=NODE,
                representation=Representation(url=url),
                pdc_url=node_pdc.url,
                pre=[
                    DataSource(
                        offering="https://catalog.test/so/extra", url=extra.pdc.serve_data("n", 4)
                    )
                ],
            )
        ],
        consumer=ChainStep(offering=CONSUMER, pdc_url=consumer.url),
    )
    chain_id = await provider.pdc.start_chain(spec)
    out = await consumer.pdc.wait_for_output(chain_id, timeout=5)
    assert out.data == {"total": 10}
    assert out.body["previousNodeParams"] == {"engine": "plain"}
    assert [r.outcome for r in node_pdc.pdc.resumes] == [ResumeOutcome.RESUMED]
    assert provider.pdc.resource_calls == []
    assert app.received[0].header("x-ptx-incomingDataspaceConnectorURI") == provider.url + "/"


async def test_fully_in_process_through_asgi_transport(
    asgi_pdc: SimulatedPDC, asgi_pdc_client: httpx.AsyncClient
) -> None:
    """PDC and resource as in-process ASGI apps, wired by host through one client."""
    resource = Resource(asgi_pdc_client, pdc_url=asgi_pdc.base_url, resume_delay=0.1)
    transport = HostRoutingTransport({"pdc.test": asgi_pdc, "resource.test": resource})
    async with httpx.AsyncClient(transport=transport) as client:
        asgi_pdc.client = client
        resource.client = client
        chain_id = await asgi_pdc.start_chain(simple_chain("http://resource.test/chain"))
        out = await asgi_pdc.wait_for_output(chain_id, timeout=5)
        await resource.aclose()
    assert out.data == {"sum": 42}
    state = (await asgi_pdc_client.get("/_sim/state")).json()
    assert [r["outcome"] for r in state["resumes"]] == ["resumed"]
    assert state["chains"][chain_id] == {"0": "resumed", "1": "delivered"}


async def test_down_pdc_answers_503_then_refuses_connections(
    simulated_pdc: LivePDC, client: httpx.AsyncClient
) -> None:
    url = simulated_pdc.url + "/service-chain/resume"
    simulated_pdc.pdc.down = True
    assert (await client.post(url, json={})).status_code == 503
    simulated_pdc.pdc.down = False
    await simulated_pdc.stop()
    with pytest.raises(httpx.ConnectError):
        await client.post(url, json={})
    await simulated_pdc.start()
    assert (await client.post(url, json={"chainId": "x"})).status_code == 200


def test_server_thread_serves_a_pdc_for_sync_callers() -> None:
    pdc = SimulatedPDC()
    with ServerThread(pdc, lifespan="off") as server:
        pdc.serve_data("d", [1])
        r = httpx.get(server.url + "/data/d")
    assert r.json() == [1]
