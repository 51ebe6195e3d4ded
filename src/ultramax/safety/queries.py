"""What a database client's input does: the classes of SQL (and MongoDB shell) statements and of Redis
commands that the rule packs match on (``sql = [...]`` in a rule's ``match``): dropping a database or a table,
truncating, deleting or updating every row, flushing Redis. Reads and scoped writes have no class."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from ultramax.safety.pathclass import DYN

__all__ = ["redis_classes", "sql_classes"]


_SQL_NOISE = re.compile(r"'(?:''|\\.|[^'\\])*'|--[^\n]*|/\*.*?\*/|#[^\n]*", re.S)


@lru_cache(maxsize=2048)
def sql_classes(text: str) -> frozenset[str]:
    """Classes of the statements in SQL (or MongoDB shell) text: drop_database, drop_table, truncate,
    delete_all, update_all, alter_drop, drop_other (and nothing for reads and scoped writes)."""
    out: set[str] = set()
    lower = text.lower()
    if "dropdatabase(" in lower.replace(" ", ""):
        out.add("drop_database")
    if re.search(r"\.drop\(\s*\)", lower):
        out.add("drop_table")
    if re.search(r"\.(?:deletemany|remove|deleteone)\(\s*(?:\{\s*\})?\s*\)", lower):
        out.add("delete_all")
    cleaned = _SQL_NOISE.sub(" ", text)
    cleaned = re.sub(r'"(?:""|[^"])*"', "x", cleaned)
    for stmt in cleaned.split(";"):
        s = " ".join(stmt.lower().split())
        if not s:
            continue
        s = re.sub(r"^(?:begin|start transaction|commit)\s*", "", s)
        s = re.sub(r"^with\b.*?\)\s*(?=delete|update)", "", s)
        if re.match(r"drop (?:database|schema|keyspace)\b", s):
            out.add("drop_database")
        elif re.match(r"drop (?:table|view|materialized view|collection)\b", s):
            out.add("drop_table")
        elif re.match(r"drop\b", s):
            out.add("drop_other")
        elif re.match(r"truncate\b", s):
            out.add("truncate")
        elif re.match(r"delete\b", s):
            where = re.search(r"\bwhere\b(.*)$", s)
            if where is None or re.fullmatch(r"\s*(?:1\s*=\s*1|true|1|'1'\s*=\s*'1'|x\s*=\s*x)\s*", where.group(1)):
                out.add("delete_all")
        elif re.match(r"update\b", s):
            where = re.search(r"\bwhere\b(.*)$", s)
            if where is None or re.fullmatch(r"\s*(?:1\s*=\s*1|true|1)\s*", where.group(1)):
                out.add("update_all")
        elif re.match(r"alter table\b.*\bdrop\b", s):
            out.add("alter_drop")
    return frozenset(out)


def redis_classes(words: Sequence[str]) -> frozenset[str]:
    if not words:
        return frozenset()
    head = words[0].lower()
    if head in ("flushall", "flushdb"):
        return frozenset({"flush_all"})
    if head in ("del", "unlink") and any(DYN in w for w in words[1:]):
        return frozenset({"delete_dynamic"})  # keys only known at run time (redis-cli --scan | xargs redis-cli DEL)
    if head in ("shutdown", "debug", "slaveof", "replicaof", "migrate", "failover") or (
        head in ("config", "cluster", "acl", "script", "function") and len(words) > 1
        and words[1].lower() in ("set", "reset", "flush", "deluser", "resetstat", "rewrite")
    ):  # fmt: skip
        return frozenset({"redis_admin"})
    return frozenset()
