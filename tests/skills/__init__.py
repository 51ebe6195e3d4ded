"""Skill graphs: the graph, the resolver, the UserPromptSubmit stage, native export and evaluation."""
