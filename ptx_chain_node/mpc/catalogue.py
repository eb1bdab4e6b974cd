"""The vetted program catalogue: lookup by (name, version), parameters, and hash pinning.

No code is ever uploaded. A computation names a catalogue program, its version and its
parameters, and carries the program *hash*: the SHA-256 of a canonical JSON description

    {"name", "version", "params" (validated, JSON form), "sectype", "code"}

where ``code`` is the SHA-256 of the source text of the modules that define what the
program does (its program module, the secure arithmetic, pre-aggregation and encoding).
Input parties share for a hash, every compute node recomputes the hash from its own
catalogue and refuses a mismatch (:class:`~.errors.ProgramMismatch`), and the output party
decodes with the same bound program. A changed parameter, version or line of program code
changes the hash.

Typical use::

    bound = catalogue.bind("mean", "1.0.0", {"scale": 2, "min_group_size": 10})
    vectors = bound.share({"value": rows}, m=3)      # input party: one vector per node
    ...                                              # nodes run bound.ref() on the shares
    result = bound.reconstruct(result_vectors)       # output party
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ptx_chain_node.errors import NotFoundError, Problem, PtxError
from ptx_chain_node.mpc import sharing
from ptx_chain_node.mpc.errors import GroupTooSmall, ProgramMismatch
from ptx_chain_node.mpc.params import ProgramParams
from ptx_chain_node.mpc.program import Columns, Precision, Program, Value
from ptx_chain_node.mpc.programs import intersection, moments, order
from ptx_chain_node.mpc.sharing import ShareVector

#: Modules whose source is part of every program's code hash, besides its own module.
_SHARED_CODE = (
    "ptx_chain_node.mpc.programs.arithmetic",
    "ptx_chain_node.mpc.aggregate",
    "ptx_chain_node.mpc.encoding",
)

CATALOGUE: dict[tuple[str, str], Program[Any]] = {
    (p.name, p.version): p for p in (*moments.PROGRAMS, *order.PROGRAMS, *intersection.PROGRAMS)
}


@functools.cache
def _module_digest(module: str) -> str:
    return hashlib.sha256(inspect.getsource(sys.modules[module]).encode()).hexdigest()


def code_digest(program: Program[Any]) -> str:
    """SHA-256 over the source of the modules that define ``program``."""
    modules = (program.compute.__module__, *_SHARED_CODE)
    return hashlib.sha256("".join(_module_digest(m) for m in modules).encode()).hexdigest()


def programs() -> list[Program[Any]]:
    """Every program of the catalogue."""
    return list(CATALOGUE.values())


def get(name: str, version: str) -> Program[Any]:
    """The program ``name`` at ``version`` (:class:`NotFoundError` if there is none)."""
    try:
        return CATALOGUE[(name, version)]
    except KeyError:
        known = sorted(f"{n} {v}" for n, v in CATALOGUE)
        raise NotFoundError(
            f"no catalogue program {name!r} version {version!r} (known: {', '.join(known)})",
            "program",
        ) from None


@dataclass(frozen=True)
class ProgramRef:
    """How a computation names its program on the wire: name, version, params and hash."""

    name: str
    version: str
    params: dict[str, Any]
    hash: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "params": self.params,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProgramRef:
        """Parse :meth:`to_json` output (:class:`PtxError` on missing fields)."""
        problems = [Problem(f"program.{k}", "missing") for k in ("name", "version") if k not in doc]
        if not isinstance(doc.get("hash"), str):
            problems.append(Problem("program.hash", "missing"))
        params = doc.get("params", {})
        if not isinstance(params, dict):
            problems.append(Problem("program.params", "must be an object"))
        if problems:
            raise PtxError("malformed program reference", 400, problems)
        return cls(str(doc["name"]), str(doc["version"]), dict(params), str(doc["hash"]))


@dataclass(frozen=True)
class ProgramResult:
    """A decoded result: one value per output name, with the declared precision."""

    name: str
    version: str
    hash: str
    names: list[str]
    values: list[Value]
    precision: Precision | None

    def as_dict(self) -> dict[str, Value]:
        """``{output name: value}``."""
        return dict(zip(self.names, self.values, strict=True))


@dataclass(frozen=True)
class BoundProgram:
    """A catalogue program with validated parameters and its hash."""

    program: Program[Any]
    params: ProgramParams
    hash: str

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def version(self) -> str:
        return self.program.version

    def ref(self) -> ProgramRef:
        """The wire reference of this computation's program."""
        return ProgramRef(self.name, self.version, self.params.to_json(), self.hash)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for a catalogue listing or an audit log)."""
        p = self.program
        return {
            **self.ref().to_json(),
            "summary": p.summary,
            "decomposable": p.decomposable,
            "columns": list(p.columns),
            "sectype": p.stype.name,
            "outputs": p.outputs,
            "output_names": p.output_names(self.params),
            "precision": None
            if p.precision is None
            else {"relative": p.precision.relative, "absolute": p.precision.absolute},
            "min_group_size": self.params.min_group_size,
        }

    def prepare(self, columns: Columns) -> list[int]:
        """An input party's rows to the integer vector it shares (aggregates or rows)."""
        vector = self.program.prepare(self.params, columns)
        expected = self.program.input_length(self.params)
        if expected is not None and len(vector) != expected:  # a catalogue bug, not input
            raise AssertionError(f"{self.name}: prepared {len(vector)} values, not {expected}")
        return vector

    def share(self, columns: Columns, m: int, t: int | None = None) -> list[ShareVector]:
        """Prepare and secret-share an input party's rows: one vector per compute node."""
        return sharing.share(self.prepare(columns), self.program.stype, m, t, program=self.hash)

    def check_input(self, vector: ShareVector, field_name: str = "input") -> None:
        """Party side: refuse shares made for another program, field or vector length."""
        problems = []
        if vector.program != self.hash:
            problems.append(Problem(f"{field_name}.program", "shared for another program"))
        if vector.modulus != self.program.stype.modulus:
            problems.append(Problem(f"{field_name}.modulus", "not this program's field"))
        expected = self.program.input_length(self.params)
        if expected is not None and len(vector.values) != expected:
            problems.append(Problem(f"{field_name}.count", f"expected {expected} values"))
        if problems:
            raise PtxError(f"input shares do not fit program {self.name}", 422, problems)

    def reconstruct(self, vectors: Sequence[ShareVector], verify: bool = True) -> ProgramResult:
        """Recombine result shares (any ``t + 1``) and decode them.

        Raises :class:`GroupTooSmall` when the guard withheld the result, and
        :class:`PtxError` for shares of another program or inconsistent shares (``verify``).
        """
        if any(v.program != self.hash for v in vectors):
            raise PtxError(
                "result shares belong to another program", 400, [Problem("shares", "hash")]
            )
        if any(v.public != vectors[0].public for v in vectors):
            raise PtxError(
                "result shares disagree on public facts", 502, [Problem("shares", "public")]
            )
        fields = sharing.reveal(vectors, verify=verify)
        values = self.program.stype.signed(fields)
        *outputs, ok = values
        if ok == 0:
            raise GroupTooSmall(self.name, self.params.min_group_size)
        public = vectors[0].public
        decoded = self.program.decode(self.params, outputs, public)
        return ProgramResult(
            self.name,
            self.version,
            self.hash,
            self.program.output_names(self.params),
            decoded,
            self.program.precision,
        )


def program_hash(program: Program[Any], params: ProgramParams) -> str:
    """The SHA-256 pin of ``program`` with ``params`` (see the module docstring)."""
    description = {
        "name": program.name,
        "version": program.version,
        "params": params.to_json(),
        "sectype": program.stype.name,
        "code": code_digest(program),
    }
    canonical = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def bind(name: str, version: str, params: Mapping[str, Any] | None = None) -> BoundProgram:
    """Validate ``params`` for a catalogue program and compute its hash."""
    program = get(name, version)
    try:
        validated = program.params.parse(dict(params or {}))
    except PtxError as exc:
        raise PtxError(f"invalid parameters for program {name}", 422, exc.problems) from None
    return BoundProgram(program, validated, program_hash(program, validated))


def resolve(ref: ProgramRef) -> BoundProgram:
    """Bind a wire reference and check its hash against this node's catalogue."""
    bound = bind(ref.name, ref.version, ref.params)
    if bound.hash != ref.hash:
        raise ProgramMismatch(ref.name, ref.version, bound.hash, ref.hash)
    return bound
