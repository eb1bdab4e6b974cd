"""pytest fixtures for the simulated PDC. Use them as a plugin, in ``conftest.py``::

    pytest_plugins = ["ptx_chain_node.testing.fixtures"]

Fixtures:

- ``simulated_pdc`` -> :class:`LivePDC`: a :class:`SimulatedPDC` under a real uvicorn on
  127.0.0.1 (ephemeral port). ``live.url`` is its base URL (give it to the gateway as its
  PDC), ``live.pdc`` the simulator; ``await live.stop()`` makes connections refused,
  ``await live.start()`` brings it back on the same port; ``live.pdc.down = True`` answers 503.
- ``asgi_pdc`` -> :class:`SimulatedPDC` for in-process use (base URL ``http://pdc.test``);
  ``asgi_pdc_client`` is an ``httpx.AsyncClient`` that reaches it through ``ASGITransport``.
- ``pdc_factory`` -> ``await pdc_factory(serve=True, client=None, **PDCConfig fields)``:
  more PDCs (a provider, the node's PDC, a consumer), cleaned up after the test.
- ``chain_spec`` -> :func:`~ptx_chain_node.testing.chainspec.simple_chain`, a factory:
  ``chain_spec(resource_url, params={"custom": "custom"}, method="basic", username=..)``.

Example::

    async def test_gateway_resumes_once(simulated_pdc, chain_spec, gateway_url):
        pdc = simulated_pdc.pdc
        chain_id = await pdc.start_chain(chain_spec(gateway_url + "/chain"))
        out = await pdc.wait_for_output(chain_id, timeout=30)
        assert [r.outcome for r in pdc.resumes_for(chain_id)] == ["resumed"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ptx_chain_node.testing.chainspec import simple_chain
from ptx_chain_node.testing.config import PDCConfig
from ptx_chain_node.testing.pdc import SimulatedPDC
from ptx_chain_node.testing.server import LiveServer


@dataclass
class LivePDC:
    """A simulated PDC served by uvicorn."""

    pdc: SimulatedPDC
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url

    async def stop(self) -> None:
        """Stop the server: connections are refused (chain state is kept)."""
        await self.server.stop()

    async def start(self) -> None:
        """Serve again on the same port."""
        await self.server.start()


PDCFactory = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture
async def pdc_factory() -> AsyncIterator[PDCFactory]:
    """Make simulated PDCs; ``serve=True`` gives a :class:`LivePDC`, else a bare PDC."""
    made: list[tuple[SimulatedPDC, LiveServer | None]] = []

    async def make(
        *, serve: bool = True, client: httpx.AsyncClient | None = None, **config: Any
    ) -> LivePDC | SimulatedPDC:
        pdc = SimulatedPDC(PDCConfig(**config), client=client)
        if not serve:
            made.append((pdc, None))
            return pdc
        server = LiveServer(pdc, lifespan="off")
        made.append((pdc, server))
        await server.start()
        pdc.base_url = server.url
        return LivePDC(pdc, server)

    yield make
    for pdc, server in reversed(made):
        await pdc.aclose()
        if server is not None:
            await server.stop()


@pytest_asyncio.fixture
async def simulated_pdc(pdc_factory: PDCFactory) -> LivePDC:
    """A simulated PDC under a real uvicorn on 127.0.0.1."""
    live: LivePDC = await pdc_factory(serve=True)
    return live


@pytest_asyncio.fixture
async def asgi_pdc(pdc_factory: PDCFactory) -> SimulatedPDC:
    """A simulated PDC for in-process use (``http://pdc.test``)."""
    pdc: SimulatedPDC = await pdc_factory(serve=False, base_url="http://pdc.test")
    return pdc


@pytest_asyncio.fixture
async def asgi_pdc_client(asgi_pdc: SimulatedPDC) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` reaching ``asgi_pdc`` in process."""
    transport = httpx.ASGITransport(app=asgi_pdc)
    async with httpx.AsyncClient(transport=transport, base_url=asgi_pdc.base_url) as client:
        yield client


@pytest.fixture
def chain_spec() -> Callable[..., Any]:
    """Factory of one-node chain specs: ``chain_spec(resource_url, **options)``."""
    return simple_chain
