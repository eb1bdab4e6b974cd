"""Carbyne Stack adapter: talk to the Amphora and Ephemeral services of every VCP.

- :mod:`.encoding`: Montgomery wire form of field elements, signed/fixed-point mapping,
  the ``w = s·r`` / ``u = v·r`` share check;
- :mod:`.config`: the compute config (``{prime, r, rinv, noSslValidation, providers}``);
- :mod:`.client`: :class:`CarbyneStackClient` (upload, read, execute, delete);
- :mod:`.templates`: MP-SPDZ programs (sum, mean, histogram) in Ephemeral's I/O convention;
- :mod:`.engine`: :class:`CarbyneStackEngine` (input plan, inputs, jobs, results, cleanup).

``ptx_chain_node.testing.fake_vcp.FakeCarbyneStack`` is a fake cloud for tests.
"""

from ptx_chain_node.carbynestack.client import CarbyneStackClient, IntegrityError, Tag, VcpError
from ptx_chain_node.carbynestack.config import ComputeConfig, Provider
from ptx_chain_node.carbynestack.encoding import TEST_FIELD, PrimeField
from ptx_chain_node.carbynestack.engine import CarbyneStackEngine, InputPlan, JobState, Result

__all__ = [
    "TEST_FIELD",
    "CarbyneStackClient",
    "CarbyneStackEngine",
    "ComputeConfig",
    "InputPlan",
    "IntegrityError",
    "JobState",
    "PrimeField",
    "Provider",
    "Result",
    "Tag",
    "VcpError",
]
