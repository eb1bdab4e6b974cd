"""Configuration of a simulated PDC (in code, or from ``PTX_SIM_PDC_*`` variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class PDCConfig:
    """Configuration of one simulated connector."""

    base_url: str = "http://pdc.test"
    db_delay: float = 0.05  # seconds of "DB work" between the resource's answer and suspension
    adapter: bool = False  # serviceChainAdapter
    adapter_timeout_ms: int = 1000  # serviceChainAdapterTimeout
    body_limit: int = 2 * 1024 * 1024  # expressLimitSize
    name: str = "Simulated-PDC"

    @classmethod
    def from_env(cls) -> PDCConfig:
        env = os.environ.get
        return cls(
            base_url=env("PTX_SIM_PDC_BASE_URL", cls.base_url),
            db_delay=float(env("PTX_SIM_PDC_DB_DELAY", str(cls.db_delay))),
            adapter=env("PTX_SIM_PDC_ADAPTER", "0").lower() in ("1", "true", "yes"),
            adapter_timeout_ms=int(env("PTX_SIM_PDC_ADAPTER_TIMEOUT_MS", "1000")),
            body_limit=int(env("PTX_SIM_PDC_BODY_LIMIT", str(cls.body_limit))),
            name=env("PTX_SIM_PDC_NAME", cls.name),
        )
