"""Testing kit: a simulated Prometheus-X Dataspace Connector and a uvicorn runner.

- :mod:`ptx_chain_node.testing.pdc`: :class:`SimulatedPDC`, the simulated connector
  (pure ASGI, Python API, routes, quirks and documented choices);
- :mod:`ptx_chain_node.testing.chainspec`: :class:`ChainSpec` and its parts;
- :mod:`ptx_chain_node.testing.wire`: the PDC's headers and bodies as pure functions;
- :mod:`ptx_chain_node.testing.records`: what tests read (calls, resumes, outputs);
- :mod:`ptx_chain_node.testing.server`: run any ASGI app under uvicorn on 127.0.0.1;
- :mod:`ptx_chain_node.testing.transport`: route httpx requests to in-process ASGI apps;
- :mod:`ptx_chain_node.testing.fixtures`: pytest plugin
  (``pytest_plugins = ["ptx_chain_node.testing.fixtures"]``).

Quick start::

    from ptx_chain_node.testing import SimulatedPDC, PDCConfig, serve, simple_chain

    pdc = SimulatedPDC(PDCConfig(db_delay=0.05))
    async with serve(pdc, lifespan="off") as server:
        pdc.base_url = server.url
        chain_id = await pdc.start_chain(simple_chain("http://127.0.0.1:8000/chain"))
        output = await pdc.wait_for_output(chain_id, timeout=30)
    await pdc.aclose()
"""

from ptx_chain_node.testing.chainspec import (
    ChainSpec,
    ChainStep,
    DataSource,
    Participant,
    Representation,
    join_params,
    new_chain_id,
    simple_chain,
)
from ptx_chain_node.testing.config import PDCConfig
from ptx_chain_node.testing.pdc import SimulatedPDC, create_app
from ptx_chain_node.testing.records import (
    DataRequest,
    Output,
    ResourceCall,
    ResumeOutcome,
    ResumeRecord,
    StepState,
)
from ptx_chain_node.testing.server import LiveServer, ServerThread, serve
from ptx_chain_node.testing.transport import HostRoutingTransport
from ptx_chain_node.testing.wire import PDC_HEADER_CASE

__all__ = [
    "PDC_HEADER_CASE",
    "ChainSpec",
    "ChainStep",
    "DataRequest",
    "DataSource",
    "HostRoutingTransport",
    "LiveServer",
    "Output",
    "PDCConfig",
    "Participant",
    "Representation",
    "ResourceCall",
    "ResumeOutcome",
    "ResumeRecord",
    "ServerThread",
    "SimulatedPDC",
    "StepState",
    "create_app",
    "join_params",
    "new_chain_id",
    "serve",
    "simple_chain",
]
