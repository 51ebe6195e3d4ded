"""ultramax's built-in pipeline stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ultramax.pipeline.stages.audit import AuditStage
from ultramax.pipeline.stages.auth import AuthValidationStage
from ultramax.pipeline.stages.enrich import EnrichmentStage
from ultramax.pipeline.stages.safety import SafetyStage
from ultramax.pipeline.stages.telemetry import TelemetryStage

if TYPE_CHECKING:
    from ultramax.pipeline.registry import StageRegistry

__all__ = [
    "AuditStage",
    "AuthValidationStage",
    "EnrichmentStage",
    "SafetyStage",
    "TelemetryStage",
    "register_builtin_stages",
]


def register_builtin_stages(registry: StageRegistry) -> None:
    registry.register("auth_validation", lambda services: AuthValidationStage())
    registry.register("safety", lambda services: SafetyStage.with_default_layers())
    registry.register("enrichment", lambda services: EnrichmentStage())
    registry.register("audit", lambda services: AuditStage(services.audit))
    registry.register("telemetry", lambda services: TelemetryStage(services.metrics))
