"""The audit report: one self-contained HTML file, printable to PDF, rendered from audit.json."""

from earlysignal.report.render import SECTION_HEADINGS, render_audit_html

__all__ = ["SECTION_HEADINGS", "render_audit_html"]
