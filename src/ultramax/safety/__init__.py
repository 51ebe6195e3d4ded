"""The safety engine: layers that judge tool calls. Now: the kill switch (layer 10)."""

from ultramax.safety.killswitch import KillSwitch, KillSwitchLayer
from ultramax.safety.layers import LayerVerdict, SafetyLayer

__all__ = ["KillSwitch", "KillSwitchLayer", "LayerVerdict", "SafetyLayer"]
