"""What one MPyC party of a run is told to do, and what it writes back.

A :class:`PartyJob` is a small JSON file: the party's index, the addresses of all ``m``
parties, the computations (a program reference plus this party's input share files, one
per input party) and where to write its result shares. ``python -m
ptx_chain_node.mpc.party --job job.json`` runs it. The result file holds one
:class:`~.sharing.ShareVector` per computation: this party's re-randomised share of every
output, which reveals nothing on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.catalogue import ProgramRef
from ptx_chain_node.mpc.sharing import ShareVector, check_parties

RESULT_FORMAT = "ptx-mpc-result/1"
JOB_FORMAT = "ptx-mpc-job/1"


@dataclass(frozen=True)
class Computation:
    """One program run on this party's input shares (one file per input party, in order)."""

    program: ProgramRef
    inputs: list[Path]

    def to_json(self) -> dict[str, Any]:
        return {"program": self.program.to_json(), "inputs": [str(p) for p in self.inputs]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Computation:
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise PtxError("malformed job", 400, [Problem("inputs", "a non-empty list of files")])
        return cls(ProgramRef.from_json(doc.get("program", {})), [Path(p) for p in inputs])


@dataclass(frozen=True)
class PartyJob:
    """Everything one party needs for one run.

    ``parties`` are ``host:port`` addresses in party order (party ``i`` listens on its port
    for parties ``< i``). The party gives up after ``timeout`` seconds or at ``deadline``
    (Unix time), whichever comes first. ``ssl`` turns on MPyC's TLS, which reads
    ``.config/party_<i>.crt``, ``.config/party_<i>.key`` and ``.config/mpyc_ca.crt`` below
    ``ssl_dir``.
    """

    run_id: str
    index: int
    parties: list[str]
    computations: list[Computation]
    output: Path
    timeout: float = 60.0
    threshold: int | None = None
    ssl: bool = False
    ssl_dir: Path | None = None
    deadline: float | None = None

    @property
    def m(self) -> int:
        return len(self.parties)

    @property
    def t(self) -> int:
        return check_parties(self.m, self.threshold)

    def validate(self) -> None:
        """Structural checks (:class:`PtxError`): party count, index, addresses, timeout."""
        check_parties(self.m, self.threshold)
        problems = []
        if not 0 <= self.index < self.m:
            problems.append(Problem("index", f"must be in 0..{self.m - 1}"))
        for i, address in enumerate(self.parties):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                problems.append(Problem(f"parties[{i}]", "must be host:port"))
        if not self.computations:
            problems.append(Problem("computations", "at least one is needed"))
        if not self.timeout > 0:
            problems.append(Problem("timeout", "must be positive"))
        if self.ssl and self.ssl_dir is None:
            problems.append(Problem("ssl_dir", "needed with ssl"))
        if problems:
            raise PtxError("invalid party job", 400, problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": JOB_FORMAT,
            "run_id": self.run_id,
            "index": self.index,
            "parties": list(self.parties),
            "computations": [c.to_json() for c in self.computations],
            "output": str(self.output),
            "timeout": self.timeout,
            "threshold": self.threshold,
            "ssl": self.ssl,
            "ssl_dir": None if self.ssl_dir is None else str(self.ssl_dir),
            "deadline": self.deadline,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PartyJob:
        try:
            if doc.get("format") != JOB_FORMAT:
                raise ValueError(f"format must be {JOB_FORMAT!r}")
            ssl_dir = doc.get("ssl_dir")
            threshold = doc.get("threshold")
            job = cls(
                run_id=str(doc["run_id"]),
                index=int(doc["index"]),
                parties=[str(a) for a in doc["parties"]],
                computations=[Computation.from_json(c) for c in doc["computations"]],
                output=Path(doc["output"]),
                timeout=float(doc.get("timeout", 60.0)),
                threshold=None if threshold is None else int(threshold),
                ssl=bool(doc.get("ssl", False)),
                ssl_dir=None if ssl_dir is None else Path(ssl_dir),
                deadline=None if doc.get("deadline") is None else float(doc["deadline"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PtxError("malformed party job", 400, [Problem("job", str(exc))]) from None
        job.validate()
        return job

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> PartyJob:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PtxError("unreadable party job", 400, [Problem("job", str(exc))]) from None
        return cls.from_json(doc)


def write_result(path: Path, run_id: str, party: int, vectors: Sequence[ShareVector]) -> None:
    """Write a party's result shares atomically."""
    doc = {
        "format": RESULT_FORMAT,
        "run_id": run_id,
        "party": party,
        "results": [v.to_json() for v in vectors],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def read_result(path: Path) -> list[ShareVector]:
    """A party's result shares, one vector per computation of its job."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PtxError("unreadable result shares", 502, [Problem("result", str(exc))]) from None
    if doc.get("format") != RESULT_FORMAT or not isinstance(doc.get("results"), list):
        raise PtxError("malformed result shares", 502, [Problem("result", "format")])
    return [ShareVector.from_json(v) for v in doc["results"]]
