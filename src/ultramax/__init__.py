"""ultramax: memory, guardrails and cost control for the Claude Code CLI.

The public API is loaded lazily (PEP 562): the hook client imports this package on Claude Code's hot path,
so importing ``ultramax`` itself must cost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "UltramaxError": "ultramax.errors",
    "ConfigError": "ultramax.errors",
    "HookInputError": "ultramax.errors",
    "AuditError": "ultramax.errors",
    "DaemonError": "ultramax.errors",
    "ModeError": "ultramax.errors",
    "PipelineError": "ultramax.errors",
    "InstallError": "ultramax.errors",
    "Paths": "ultramax.paths",
    "Settings": "ultramax.config",
    "SETTINGS": "ultramax.config",
    "load_settings": "ultramax.config",
    "HookEvent": "ultramax.events",
    "parse_event": "ultramax.events",
    "parse_payload": "ultramax.events",
    "Decision": "ultramax.decisions",
    "HookReply": "ultramax.decisions",
    "render": "ultramax.decisions",
    "ModeConfig": "ultramax.modes",
    "get_mode": "ultramax.modes",
    "detect_mode": "ultramax.modes",
    "activate_mode": "ultramax.modes",
    "AuditLog": "ultramax.audit",
    "verify": "ultramax.audit",
    "Runtime": "ultramax.runtime",
    "Dispatcher": "ultramax.pipeline.dispatcher",
    "StageOutput": "ultramax.pipeline.stage",
    "StageResult": "ultramax.pipeline.stage",
    "HookContext": "ultramax.pipeline.stage",
    "register_stage": "ultramax.pipeline.registry",
    "KillSwitch": "ultramax.safety.killswitch",
}

__all__ = [
    "SETTINGS",
    "AuditError",
    "AuditLog",
    "ConfigError",
    "DaemonError",
    "Decision",
    "Dispatcher",
    "HookContext",
    "HookEvent",
    "HookInputError",
    "HookReply",
    "InstallError",
    "KillSwitch",
    "ModeConfig",
    "ModeError",
    "Paths",
    "PipelineError",
    "Runtime",
    "Settings",
    "StageOutput",
    "StageResult",
    "UltramaxError",
    "__version__",
    "activate_mode",
    "detect_mode",
    "get_mode",
    "load_settings",
    "parse_event",
    "parse_payload",
    "register_stage",
    "render",
    "verify",
]

if TYPE_CHECKING:
    from ultramax.audit import AuditLog, verify
    from ultramax.config import SETTINGS, Settings, load_settings
    from ultramax.decisions import Decision, HookReply, render
    from ultramax.errors import (
        AuditError,
        ConfigError,
        DaemonError,
        HookInputError,
        InstallError,
        ModeError,
        PipelineError,
        UltramaxError,
    )
    from ultramax.events import HookEvent, parse_event, parse_payload
    from ultramax.modes import ModeConfig, activate_mode, detect_mode, get_mode
    from ultramax.paths import Paths
    from ultramax.pipeline.dispatcher import Dispatcher
    from ultramax.pipeline.registry import register_stage
    from ultramax.pipeline.stage import HookContext, StageOutput, StageResult
    from ultramax.runtime import Runtime
    from ultramax.safety.killswitch import KillSwitch


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ultramax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
