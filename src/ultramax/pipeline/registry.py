"""Stage registry: pipelines are built by name from the mode's stage list.

Adding an engine (memory, enrichment, the rest of the safety gate) is one ``register_stage`` call; a mode
may list stages whose engine is not installed -- they are reported by ``ultramax mode show`` and skipped,
never run as placeholders.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ultramax.audit import AuditLog
from ultramax.observability import Metrics
from ultramax.paths import Paths
from ultramax.pipeline.stage import Stage

__all__ = ["StageFactory", "StageRegistry", "StageServices", "default_registry", "register_stage"]


@dataclass(slots=True)
class StageServices:
    """Shared resources a stage factory may use (one set per runtime)."""

    paths: Paths
    audit: AuditLog
    metrics: Metrics | None = None
    shared: dict[str, object] = field(default_factory=dict)  # engines keep warm state here


StageFactory = Callable[[StageServices], Stage]


class StageRegistry:
    """Stage name -> factory."""

    def __init__(self) -> None:
        self._factories: dict[str, StageFactory] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: StageFactory, *, replace: bool = False) -> None:
        with self._lock:
            if name in self._factories and not replace:
                raise ValueError(f"stage {name!r} is already registered")
            self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def build(self, names: list[str] | tuple[str, ...], services: StageServices) -> tuple[list[Stage], list[str]]:
        """Instantiate the named stages; return them and the names that have no registered engine."""
        stages: list[Stage] = []
        missing: list[str] = []
        for name in names:
            factory = self._factories.get(name)
            if factory is None:
                missing.append(name)
            else:
                stages.append(factory(services))
        return stages, missing


_DEFAULT: StageRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> StageRegistry:
    """The process-wide registry with ultramax's built-in stages."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            from ultramax.pipeline.stages import register_builtin_stages

            _DEFAULT = StageRegistry()
            register_builtin_stages(_DEFAULT)
        return _DEFAULT


def register_stage(name: str, factory: StageFactory, *, replace: bool = False) -> None:
    """Register an engine's stage in the default registry."""
    default_registry().register(name, factory, replace=replace)
