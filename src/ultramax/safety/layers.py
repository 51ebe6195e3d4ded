"""Shared facts the safety layers use."""

from __future__ import annotations

__all__ = ["READ_ONLY_TOOLS"]

READ_ONLY_TOOLS = frozenset({"Read", "Glob", "Grep", "LS", "NotebookRead", "TodoWrite", "TaskList", "TaskGet"})
"""Built-in tools that only read (allowed through the kill switch outside trading mode)."""
