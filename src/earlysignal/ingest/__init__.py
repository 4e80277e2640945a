"""Ingest raw departmental extracts into person records, address records, a gazetteer and coded events.

See docs/ingest-and-link.md for the mapping format and the output interface read by `earlysignal link`.
"""

from earlysignal.ingest.engine import IngestError, IngestSummary, SourceReport, ingest
from earlysignal.ingest.mapping import SourceMapping, load_mapping, mapping_hash, resolve_mapping_paths

__all__ = [
    "IngestError", "IngestSummary", "SourceMapping", "SourceReport", "ingest", "load_mapping", "mapping_hash",
    "resolve_mapping_paths",
]
