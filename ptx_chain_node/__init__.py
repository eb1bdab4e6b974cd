"""ptx-chain-node: a secure multi-party computation step in a Prometheus-X service chain.

The package is the transport-free core: protocol parsing, jobs, the store, the resume
client, the coordination core and the MPC engines. The ASGI surface lives in ``gateway``.
"""

__version__ = "0.1.0"
