"""Linkage: person and address records from ingest -> residents, households and linked histories (Splink)."""
