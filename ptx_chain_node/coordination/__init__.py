"""The coordination core: collaborations, parties, programs, runs, notifications, deadlines.

Transport-free: :class:`Coordinator` holds the use cases the HTTP routes call.
"""

from ptx_chain_node.coordination.collaboration import (
    Collaboration,
    CollaborationRequest,
    ColumnSpec,
    ColumnType,
    ExpectedParty,
    InputSpec,
    OutputPartySpec,
    Program,
    ProgramRef,
)
from ptx_chain_node.coordination.deadlines import DeadlineSweep
from ptx_chain_node.coordination.engine import Engine, PartyInput, RunPhase, RunStatus
from ptx_chain_node.coordination.local_engine import LocalTestEngine
from ptx_chain_node.coordination.notify import NotifyPolicy, sign, verify_signature
from ptx_chain_node.coordination.programs import (
    ProgramDefinition,
    ProgramRegistry,
    StaticProgramRegistry,
)
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.runner import RunPolicy
from ptx_chain_node.coordination.service import Coordinator, CoordinatorPolicy, Registration
from ptx_chain_node.coordination.states import CollabState, Facts, next_state, transition
from ptx_chain_node.coordination.store import CollaborationStore

__all__ = [
    "CollabState",
    "Collaboration",
    "CollaborationRecord",
    "CollaborationRequest",
    "CollaborationStore",
    "ColumnSpec",
    "ColumnType",
    "Coordinator",
    "CoordinatorPolicy",
    "DeadlineSweep",
    "Engine",
    "ExpectedParty",
    "Facts",
    "InputSpec",
    "LocalTestEngine",
    "NotifyPolicy",
    "OutputPartySpec",
    "PartyInput",
    "PartyRecord",
    "Program",
    "ProgramDefinition",
    "ProgramRef",
    "ProgramRegistry",
    "Registration",
    "Role",
    "RunPhase",
    "RunPolicy",
    "RunStatus",
    "StaticProgramRegistry",
    "next_state",
    "sign",
    "transition",
    "verify_signature",
]
