"""Cost control: the model catalog, the request analyzer, the router, the cost ledger and the proxy."""

from ultramax.routing.analyzer import RequestSignals, TaskAnalysis, analyze_prompt, request_signals
from ultramax.routing.catalog import Catalog, ModelSpec, Tier, Usage, load_catalog
from ultramax.routing.ledger import Ledger, LedgerEntry
from ultramax.routing.router import Decision, Router, RouterConfig

__all__ = [
    "Catalog",
    "Decision",
    "Ledger",
    "LedgerEntry",
    "ModelSpec",
    "RequestSignals",
    "Router",
    "RouterConfig",
    "TaskAnalysis",
    "Tier",
    "Usage",
    "analyze_prompt",
    "load_catalog",
    "request_signals",
]
