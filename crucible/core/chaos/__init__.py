"""Chaos experiments: the fault providers and what they share."""

from crucible.core.chaos.faults import (
    FAULT_TYPES,
    Bandwidth,
    Blackhole,
    Direction,
    Fault,
    HttpErrors,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    fault_from_dict,
    fault_to_dict,
    fault_type,
)
from crucible.core.chaos.proxy import FaultProxy, ProxyStats

__all__ = [
    "FAULT_TYPES",
    "Bandwidth",
    "Blackhole",
    "Direction",
    "Fault",
    "FaultProxy",
    "HttpErrors",
    "Latency",
    "LimitData",
    "ProxyStats",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "fault_from_dict",
    "fault_to_dict",
    "fault_type",
]
