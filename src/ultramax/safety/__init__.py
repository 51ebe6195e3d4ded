"""The safety engine: the seed's 16 layers judging tool calls, for hooks, the MCP gateway and the CLI."""

from ultramax.safety.engine import (
    LayerResult,
    LayerVerdict,
    SafetyDecision,
    SafetyEngine,
    SafetyLayer,
    SafetyRequest,
)
from ultramax.safety.killswitch import KillSwitch, KillSwitchLayer

__all__ = [
    "KillSwitch",
    "KillSwitchLayer",
    "LayerResult",
    "LayerVerdict",
    "SafetyDecision",
    "SafetyEngine",
    "SafetyLayer",
    "SafetyRequest",
]
