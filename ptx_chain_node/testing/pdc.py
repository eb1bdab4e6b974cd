"""A simulated Prometheus-X Dataspace Connector (PDC) that drives chain resources.

:class:`SimulatedPDC` is a pure-ASGI app playing one connector, with a Python API for
tests. It reproduces what the real PDC code does (``shared/reference/service-chain-protocol.md``),
quirks included: mixed-case ``x-ptx-*`` headers, JSON labelled ``text/plain``, params joined
with ``Object.values(p).join('')``, ``basic`` credentials in the body, suspension only after
its own DB work, silent 200 for resumes that match nothing, no idempotency, 413 over the
body limit, pre-chain merges and adapter mode.

In process (outbound calls through one injected ``httpx.AsyncClient``)::

    pdc = SimulatedPDC(PDCConfig(db_delay=0.05), client=httpx.AsyncClient())
    chain_id = await pdc.start_chain(spec)          # calls the first node's resource
    out = await pdc.wait_for_output(chain_id, 10)    # what the final node received
    assert [r.outcome for r in pdc.resumes_for(chain_id)] == ["resumed"]
    await pdc.aclose()

Under uvicorn: ``PTX_SIM_PDC_DB_DELAY=0.1 uvicorn ptx_chain_node.testing.pdc:create_app
--factory --port 9000`` (env: ``PTX_SIM_PDC_BASE_URL``, ``PTX_SIM_PDC_DB_DELAY`` seconds,
``PTX_SIM_PDC_ADAPTER`` 0/1, ``PTX_SIM_PDC_ADAPTER_TIMEOUT_MS``, ``PTX_SIM_PDC_BODY_LIMIT``
bytes, ``PTX_SIM_PDC_NAME``). In tests use :func:`ptx_chain_node.testing.server.serve`.

Routes:

- ``POST /service-chain/resume`` ``{chainId, targetId, data, params[, hostURI]}`` (the real one);
- ``GET /data/<name>``: this PDC as a data provider, serving what ``serve_data`` registered;
- ``POST /_sim/service-chain/step``: simulator-only hand-off of one chain step to another
  simulated PDC: ``{"spec": <ChainSpec JSON>, "chainId", "index", "data"[,
  "previousNodeParams"]}``; the receiver runs step ``index`` and answers
  ``200 {"message": "step accepted"}`` once that step's resource answered;
- ``POST /_sim/chains`` (ChainSpec JSON -> ``{"chainId"}``), ``GET /_sim/state`` (the logs).

Choices where the reference is silent: a resume for a chain this PDC **lost in a restart**
answers 500 (the real PDC throws when its in-memory chain is gone), a resume for a chain
it never knew answers 200 (nothing matched); a resume dropped because it arrived before
suspension makes the chain go on with the resource's synchronous response body; a body
that is not JSON answers 400; a resume whose forward fails (next simulated PDC down)
answers 500 with outcome ``error``; an unreachable resource leaves the step ``failed``
(recorded in ``errors``); a non-2xx answer is recorded and the node still suspends.
``down = True`` answers 503 to everything; stop the server for connection refused.
``restart()`` forgets the chains and cancels pending DB work/adapter timers; logs stay.

Timing: a resume answers only after the next step's resource has answered (or the
hand-off to the next simulated PDC was accepted). A step runs on the simulated PDC at its
``pdc_url``, else on the PDC that ran the previous step (see :mod:`.chainspec`). Bodies
are always JSON, labelled ``Representation.content_type`` (default ``text/plain``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import httpx

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.testing.asgi import (
    Receive,
    Scope,
    Send,
    decode_body,
    send_json,
    serve_lifespan,
)
from ptx_chain_node.testing.chainspec import (
    ChainSpec,
    DataSource,
    join_params,
    js_truthy,
    new_chain_id,
)
from ptx_chain_node.testing.config import PDCConfig
from ptx_chain_node.testing.log import ChainRun, PDCLog, StepRun
from ptx_chain_node.testing.records import (
    Output,
    ResourceCall,
    ResumeOutcome,
    ResumeRecord,
    StepState,
)
from ptx_chain_node.testing.routes import dispatch
from ptx_chain_node.testing.wire import merge_additional, pdc_headers, resource_body, source_headers

JsonValue = Any
_NOT_SET: Any = object()  # "no previousNodeParams" (None is a value)


class ChainLost(Exception):
    """The chain was known before a restart and is gone from memory."""


class SimulatedPDC(PDCLog):
    """One simulated connector: an ASGI app plus a Python API (see the module doc)."""

    def __init__(self, config: PDCConfig | None = None, *, client: httpx.AsyncClient | None = None):
        super().__init__()
        self.config = config or PDCConfig()
        self._client = client
        self._owns_client = client is None
        self.close_on_shutdown = False
        self.down = False
        self.served_data: dict[str, JsonValue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return self.config.base_url.rstrip("/")

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.config.base_url = value.rstrip("/")

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or (self._owns_client and self._client.is_closed):
            # The real PDC has no timeouts of its own.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None))
            self._owns_client = True
        return self._client

    @client.setter
    def client(self, client: httpx.AsyncClient) -> None:
        """Use ``client`` for outbound calls from now on (not closed by ``aclose``)."""
        self._client, self._owns_client = client, False

    def restart(self) -> None:
        """Lose every in-memory chain, as a PDC process restart does. Logs are kept."""
        self.forgotten.update(self.chains)
        self.chains.clear()
        for task in list(self._tasks):
            task.cancel()
        self.down = False

    async def aclose(self) -> None:
        """Cancel background work and close the client if this PDC created it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ Python API
    def serve_data(self, name: str, data: JsonValue) -> str:
        """Serve ``data`` as a provider on ``GET /data/<name>``; returns its URL."""
        self.served_data[name] = data
        return f"{self.base_url}/data/{name}"

    async def start_chain(self, spec: ChainSpec) -> str:
        """Start a chain: fetch the source data and hand it to the first node.

        Returns once the first step's resource answered. The chain id is new and shaped
        like the real one.
        """
        if spec.incoming_connector_uri is None:
            spec = spec.model_copy(update={"incoming_connector_uri": self.base_url + "/"})
        run = ChainRun(new_chain_id(), spec)
        self.chains[run.chain_id] = run
        data = spec.source.data
        if spec.source.url is not None:
            data = await self._fetch(run, -1, spec.source, spec.steps[0].offering)
        await self._route(run, 0, data, _NOT_SET)
        return run.chain_id

    async def resume(
        self,
        chain_id: str | None,
        target_id: str | None,
        data: JsonValue = None,
        params: JsonValue = None,
        *,
        host_uri: str | None = None,
        via: str = "http",
    ) -> ResumeRecord:
        """Resume a step as ``POST /service-chain/resume`` does; return the record.

        Raises :class:`ChainLost` (500 over HTTP) for a chain lost in a restart, and
        whatever forwarding raised (recorded with outcome ``error``).
        """
        record = ResumeRecord(chain_id, target_id, data, params, ResumeOutcome.UNKNOWN)
        record.host_uri, record.via = host_uri, via
        self.resumes.append(record)
        if host_uri is not None and host_uri != "local":
            record.outcome = ResumeOutcome.STATUS_REPORT
            return record
        run = self.chains.get(chain_id) if isinstance(chain_id, str) else None
        if run is None:
            if chain_id in self.forgotten:
                record.outcome, record.status = ResumeOutcome.ERROR, 500
                record.error = "chain not found in memory (lost in restart)"
                raise ChainLost(record.error)
            return record
        step_run = run.find_step(target_id)
        if step_run is None:
            return record
        if step_run.state in (StepState.PENDING, StepState.CALLING, StepState.CALLED):
            step_run.early_resumes += 1
            record.outcome = ResumeOutcome.DROPPED_EARLY
            return record
        if step_run.state not in (StepState.SUSPENDED, StepState.RESUMED):
            return record
        duplicate = step_run.state is StepState.RESUMED
        record.outcome = ResumeOutcome.DUPLICATE if duplicate else ResumeOutcome.RESUMED
        step_run.state = StepState.RESUMED
        try:
            await self._route(
                run, step_run.index + 1, data, params if js_truthy(params) else _NOT_SET
            )
        except Exception as exc:
            record.outcome, record.status, record.error = ResumeOutcome.ERROR, 500, repr(exc)
            raise
        return record

    async def accept_step(
        self, spec: ChainSpec, chain_id: str, index: int, data: JsonValue, prev: Any = _NOT_SET
    ) -> None:
        """Run step ``index`` of a chain handed over by another simulated PDC."""
        if not 0 <= index < len(spec.steps):
            raise ValueError(f"no step {index} in this chain")
        run = self.chains.get(chain_id)
        if run is None or run.spec != spec:
            run = ChainRun(chain_id, spec)
            self.chains[chain_id] = run
            self.forgotten.discard(chain_id)
        await self._run_step(run, index, data, prev)

    # ------------------------------------------------------------------ chain engine
    def _is_here(self, pdc_url: str | None) -> bool:
        return pdc_url is None or pdc_url.rstrip("/") == self.base_url

    async def _route(self, run: ChainRun, index: int, data: JsonValue, prev: Any) -> None:
        """Run step ``index`` here, or hand it to the simulated PDC that hosts it."""
        step = run.spec.steps[index]
        if self._is_here(step.pdc_url):
            await self._run_step(run, index, data, prev)
            return
        assert step.pdc_url is not None
        message: dict[str, JsonValue] = {
            "spec": run.spec.model_dump(mode="json", by_alias=True),
            "chainId": run.chain_id,
            "index": index,
            "data": data,
        }
        if prev is not _NOT_SET:
            message["previousNodeParams"] = prev
        url = f"{step.pdc_url.rstrip('/')}/_sim/service-chain/step"
        response = await self.client.post(url, json=message)
        response.raise_for_status()

    def _context(
        self, run: ChainRun, target: str, next_target: str | None, previous: str | None
    ) -> ChainContext:
        spec = run.spec
        return ChainContext(
            chain_id=run.chain_id,
            target_id=target,
            next_target=next_target,
            previous_target=previous,
            incoming_connector_uri=spec.incoming_connector_uri,
            data_exchange_id=run.exchange_id,
            contract_id=spec.contract_id,
            contract_url=spec.contract_url,
        )

    async def _fetch(
        self, run: ChainRun, index: int, source: DataSource, next_node: str
    ) -> JsonValue:
        """GET a provider's data resource with the chain headers (+ next-node)."""
        if source.url is None:
            return source.data
        context = self._context(run, source.offering, next_node, None)
        response = await self.client.get(
            source.url, headers=source_headers(context, source, next_node)
        )
        response.raise_for_status()
        return decode_body(response.content)

    async def _run_step(self, run: ChainRun, index: int, data: JsonValue, prev: Any) -> None:
        spec = run.spec
        step = spec.steps[index]
        final = index == len(spec.nodes)
        step_run = StepRun(index)
        run.steps[index] = step_run
        if step.pre:
            fetched = [(s, await self._fetch(run, index, s, step.offering)) for s in step.pre]
            data = merge_additional(data, fetched)
        next_target = None if final else spec.steps[index + 1].offering
        previous = step.pre[0].offering if step.pre else None
        context = self._context(run, step.offering, next_target, previous)
        params = step.params if step.verbatim_params else join_params(step.params)
        representation = step.representation
        if representation is None:
            if not final:
                raise ValueError(f"chain node {step.offering} has no resource representation")
            body = {"data": data, "contract": spec.contract_url, "params": params}
            if prev is not _NOT_SET:
                body["previousNodeParams"] = prev
            self.outputs.append(Output(run.chain_id, step.offering, body, []))
            step_run.state = StepState.DELIVERED
            return
        headers = pdc_headers(context, representation)
        body = resource_body(
            data,
            spec.contract_url,
            params,
            representation,
            previous_node_params=None if prev is _NOT_SET else prev,
            has_previous_node_params=prev is not _NOT_SET,
        )
        url, method = representation.url, "POST"
        if "{userId}" in url:
            url, method = url.replace("{userId}", spec.user_id), "PUT"
        raw = json.dumps(body).encode()
        call = ResourceCall(
            run.chain_id, step.offering, method, url, list(headers.items()), body, raw
        )
        self.resource_calls.append(call)
        step_run.state = StepState.CALLING
        try:
            response = await self.client.request(method, url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            call.error = repr(exc)
            step_run.state = StepState.FAILED
            self.errors.append(f"resource {url}: {exc!r}")
            return
        call.status, call.response = response.status_code, decode_body(response.content)
        if final:
            self.outputs.append(Output(run.chain_id, step.offering, body, call.headers))
            step_run.state = StepState.DELIVERED
            return
        # A non-2xx marks the exchange NODE_CALLBACK_ERROR, but the node still suspends.
        step_run.state = StepState.CALLED
        self._spawn(self._after_call(run, step_run, call.response))

    async def _after_call(self, run: ChainRun, step_run: StepRun, response: JsonValue) -> None:
        """The PDC's DB work, then suspension (or the chain goes on if a resume came early)."""
        try:
            await asyncio.sleep(self.config.db_delay)
            if (
                run.steps.get(step_run.index) is not step_run
                or self.chains.get(run.chain_id) is not run
            ):
                return
            if step_run.early_resumes:
                step_run.state = StepState.CONTINUED
                await self._route(run, step_run.index + 1, response, _NOT_SET)
                return
            step_run.state = StepState.SUSPENDED
            step = run.spec.steps[step_run.index]
            adapter = self.config.adapter if step.adapter is None else step.adapter
            if not adapter:
                return
            timeout_ms = step.adapter_timeout_ms or self.config.adapter_timeout_ms
            await asyncio.sleep(timeout_ms / 1000)
            if step_run.state is not StepState.SUSPENDED:
                return
            data = response.get("data") if isinstance(response, dict) else None
            params = response.get("params") if isinstance(response, dict) else None
            await self.resume(
                run.chain_id,
                step.offering,
                data if js_truthy(data) else response,
                params if js_truthy(params) else "",
                via="adapter",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (background task: record, never raise)
            self.errors.append(f"after call of step {step_run.index}: {exc!r}")

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self._on_shutdown)
            return
        if scope["type"] != "http":
            return
        if self.down:
            await send_json(send, 503, {"error": "service unavailable"})
            return
        await dispatch(self, scope, receive, send)

    async def _on_shutdown(self) -> None:
        if self.close_on_shutdown:
            await self.aclose()


def create_app() -> SimulatedPDC:
    """uvicorn factory: ``uvicorn ptx_chain_node.testing.pdc:create_app --factory``."""
    pdc = SimulatedPDC(PDCConfig.from_env())
    pdc.close_on_shutdown = True
    return pdc


__all__ = ["ChainLost", "PDCConfig", "SimulatedPDC", "create_app"]
