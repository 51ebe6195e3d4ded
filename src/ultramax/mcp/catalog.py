"""The gateway's aggregated view: every active server's tools, resources, templates and prompts under one roof.

In the default mode names are namespaced ``<server>__<name>`` (tools and prompts; resource URIs stay as they are,
they are already global). In pass-through mode names are kept as the servers give them (a clash is resolved for
the server listed first, and reported). Lists are served in pages with an opaque cursor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from ultramax.mcp.config import NAME_SEPARATOR
from ultramax.mcp.upstream import Catalog

__all__ = ["AggregateView", "Entry", "decode_cursor", "encode_cursor", "page"]

log = logging.getLogger("ultramax.mcp")

_CURSOR_PREFIX = "umx1:"
# Claude Code calls a tool ``mcp__<server>__<tool>`` and the API refuses any tool name over 64 characters (one such
# tool fails the whole session); registered as ``ultramax``, the gateway's names must fit in what is left
MAX_TOOL_NAME = 64 - len("mcp__ultramax__")


@dataclass(frozen=True, slots=True)
class Entry:
    """One exposed item: its downstream name, the namespace that serves it and its upstream name."""

    name: str
    namespace: str
    upstream_name: str
    item: dict[str, Any]


@dataclass(slots=True)
class AggregateView:
    """Built from each namespace's catalog, in configuration order."""

    tools: list[Entry] = field(default_factory=list)
    prompts: list[Entry] = field(default_factory=list)
    resources: list[Entry] = field(default_factory=list)
    templates: list[Entry] = field(default_factory=list)
    tool_index: dict[str, Entry] = field(default_factory=dict)
    prompt_index: dict[str, Entry] = field(default_factory=dict)
    resource_index: dict[str, str] = field(default_factory=dict)  # uri -> namespace
    template_patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, catalogs: Iterable[tuple[str, Catalog]], *, prefix: bool) -> AggregateView:
        view = cls()
        for namespace, catalog in catalogs:
            for tool in catalog.tools:
                view._add("tool", namespace, tool, prefix=prefix)
            for prompt in catalog.prompts:
                view._add("prompt", namespace, prompt, prefix=prefix)
            for resource in catalog.resources:
                uri = resource.get("uri")
                if not isinstance(uri, str) or uri in view.resource_index:
                    continue
                view.resource_index[uri] = namespace
                view.resources.append(Entry(uri, namespace, uri, resource))
            for template in catalog.templates:
                uri_template = template.get("uriTemplate")
                if not isinstance(uri_template, str):
                    continue
                view.templates.append(Entry(uri_template, namespace, uri_template, template))
                view.template_patterns.append((_template_regex(uri_template), namespace))
        return view

    def _add(self, kind: str, namespace: str, item: dict[str, Any], *, prefix: bool) -> None:
        upstream = item.get("name")
        if not isinstance(upstream, str):
            return
        out, index = (self.tools, self.tool_index) if kind == "tool" else (self.prompts, self.prompt_index)
        name = f"{namespace}{NAME_SEPARATOR}{upstream}" if prefix else upstream
        if kind == "tool":
            name = _fit(name)
        if name in index:
            if index[name].namespace != namespace:
                self.clashes.append(f"{kind} {name!r} of {namespace} hidden by {index[name].namespace}'s")
            return
        entry = Entry(name, namespace, upstream, {**item, "name": name})
        index[name] = entry
        out.append(entry)

    def resource_owner(self, uri: str) -> str | None:
        """The namespace serving ``uri``: listed exactly, else the first template that matches it."""
        owner = self.resource_index.get(uri)
        if owner is not None:
            return owner
        return next((ns for pattern, ns in self.template_patterns if pattern.fullmatch(uri)), None)

    def digest(self) -> dict[str, str]:
        """A fingerprint per list, to tell which ones changed."""
        return {
            "tools": _digest(e.item for e in self.tools),
            "prompts": _digest(e.item for e in self.prompts),
            "resources": _digest([*(e.item for e in self.resources), *(e.item for e in self.templates)]),
        }


def _fit(name: str) -> str:
    """``name``, or when it is too long for Claude Code its head and a hash of the whole (stable across restarts,
    so a session's names do not change; calls find the upstream name through the index)."""
    if len(name) <= MAX_TOOL_NAME:
        return name
    tag = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_TOOL_NAME - len(tag) - 1]}-{tag}"


def _digest(items: Iterable[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(list(items), sort_keys=True, default=str).encode()).hexdigest()


def _template_regex(template: str) -> re.Pattern[str]:
    """A regex for an RFC 6570 template's simple expansions (``{id}`` -> one path segment, ``{+path}`` -> any)."""
    out = []
    for part in re.split(r"(\{[^}]*\})", template):
        if part.startswith("{") and part.endswith("}"):
            out.append(".*" if part[1:2] in "+#" else "[^/?#]*")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def encode_cursor(offset: int) -> str:
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(str(offset).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        if not cursor.startswith(_CURSOR_PREFIX):
            raise ValueError(cursor)
        offset = int(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX) :].encode()).decode())
        if offset < 0:
            raise ValueError(cursor)
    except ValueError:
        raise MCPError(code=INVALID_PARAMS, message=f"invalid cursor {cursor!r}") from None
    return offset


def page(items: Sequence[dict[str, Any]], cursor: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` from ``cursor`` and the cursor of the next page (None on the last)."""
    start = decode_cursor(cursor)
    end = start + size
    return list(items[start:end]), encode_cursor(end) if end < len(items) else None
