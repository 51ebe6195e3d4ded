"""ultramax's built-in pipeline stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ultramax.pipeline.stages.audit import AuditStage
from ultramax.pipeline.stages.auth import AuthValidationStage
from ultramax.pipeline.stages.enrich import EnrichmentStage
from ultramax.pipeline.stages.prewarm import PrewarmStage
from ultramax.pipeline.stages.safety import SafetyStage
from ultramax.pipeline.stages.skills import SkillsStage
from ultramax.pipeline.stages.telemetry import TelemetryStage
from ultramax.prewarm import PrewarmSender
from ultramax.skills.engine import SkillEngine

if TYPE_CHECKING:
    from ultramax.pipeline.registry import StageRegistry, StageServices
    from ultramax.pipeline.stage import Stage

__all__ = [
    "AuditStage",
    "AuthValidationStage",
    "EnrichmentStage",
    "PrewarmStage",
    "SafetyStage",
    "SkillsStage",
    "TelemetryStage",
    "register_builtin_stages",
]


def _memory_stage(services: StageServices) -> Stage:
    from ultramax.memory.stage import build_stage  # imported when a pipeline first needs it

    return build_stage(services)


def register_builtin_stages(registry: StageRegistry) -> None:
    registry.register("auth_validation", lambda services: AuthValidationStage())
    registry.register("safety", lambda services: SafetyStage.with_default_layers())
    registry.register("route_prewarm", _prewarm_stage)
    registry.register("memory_sync", _memory_stage)
    registry.register("enrichment", lambda services: EnrichmentStage())
    registry.register("skills", _skills_stage)
    registry.register("audit", lambda services: AuditStage(services.audit))
    registry.register("telemetry", lambda services: TelemetryStage(services.metrics))


def _skills_stage(services: StageServices) -> SkillsStage:
    engine = services.shared.get("skills")
    if not isinstance(engine, SkillEngine):
        engine = services.shared["skills"] = SkillEngine(services.paths.claude_dir)
    return SkillsStage(engine)


def _prewarm_stage(services: StageServices) -> PrewarmStage:
    sender = services.shared.get("prewarm")
    if not isinstance(sender, PrewarmSender):
        sender = services.shared["prewarm"] = PrewarmSender(services.paths)
    return PrewarmStage(sender)
