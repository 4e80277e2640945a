"""Monitoring for the board: how past lists turned out, data drift per source, switch-off criteria."""

from earlysignal.monitor.run import MonitorResult, build_monitor, run_monitor

__all__ = ["MonitorResult", "build_monitor", "run_monitor"]
