"""Monitoring: SLOs, error budgets and burn-rate alerts, and their Prometheus rules.

``slo.py`` parses the SLO file; ``counts.py`` holds good/total events per
minute; ``burn.py`` turns them into budgets, burn rates and alerts on the
injected clock; ``rules.py`` writes the same SLOs as Prometheus rules named as
Sloth names them; ``policy.py`` refuses promotions while a budget is spent;
``sources.py`` holds what feeds the counts.
"""

from .burn import AlertReading, AlertTransition, BurnRateMonitor, SLISource, SLOStatus, WindowReading, evaluate
from .counts import EventCounts
from .policy import ErrorBudgetPolicy
from .slo import SLI_KINDS, SLO, AlertWindow, SLOFile, format_duration, load_slo_file, parse_duration, parse_slo_file
from .sources import CountsSource, read_counts_jsonl

__all__ = [
    "AlertReading",
    "AlertTransition",
    "AlertWindow",
    "BurnRateMonitor",
    "CountsSource",
    "ErrorBudgetPolicy",
    "EventCounts",
    "SLISource",
    "SLI_KINDS",
    "SLO",
    "SLOFile",
    "SLOStatus",
    "WindowReading",
    "evaluate",
    "format_duration",
    "load_slo_file",
    "parse_duration",
    "parse_slo_file",
    "read_counts_jsonl",
]
