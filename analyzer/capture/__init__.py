"""Capture layer: pcap/pcapng records -> columnar packet batches (numpy), streamed in chunks."""

from .addresses import addr_halves, addr_str, addr_strs
from .decode import CLASS_NAMES, PacketBatch, decode
from .errors import CaptureError
from .formats import CaptureFile, RecordChunk
from .reader import CaptureSummary, Payload, SummaryBuilder, flow_keys, iter_batches, iter_payloads, summarize

__all__ = [
    "CLASS_NAMES",
    "CaptureError",
    "CaptureFile",
    "CaptureSummary",
    "PacketBatch",
    "Payload",
    "RecordChunk",
    "SummaryBuilder",
    "addr_halves",
    "addr_str",
    "addr_strs",
    "decode",
    "flow_keys",
    "iter_batches",
    "iter_payloads",
    "summarize",
]
