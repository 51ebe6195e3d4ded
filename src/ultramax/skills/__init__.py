"""Skill graphs (seed section 6): skills load by trigger, with their dependencies first, within a budget.

``graph`` loads and validates the graph (shipped skills + ``~/.claude/skills/graphs/config.json``),
``resolver`` decides which skills a prompt gets and in which order, ``engine`` keeps the warm state the
UserPromptSubmit stage uses, ``export`` writes native Claude Code skills (``ultramax skills sync``) and
``evaluate`` scores a resolver against labelled prompts (``ultramax skills eval``).
"""
