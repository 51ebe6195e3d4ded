"""``ultramax status``: the seed's status JSON (section 13 ``get_stats``), extended with the daemon, the mode,
circuit breakers and the kill switch."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ultramax import __version__
from ultramax.audit import verify
from ultramax.config import load_settings
from ultramax.daemon.control import daemon_status
from ultramax.errors import AuditError
from ultramax.modes import detect_mode
from ultramax.paths import Paths
from ultramax.safety.killswitch import KillSwitch

__all__ = ["known_projects", "memory_project", "status_report"]


def known_projects(paths: Paths) -> list[str]:
    """Memory projects: those in the memory store (read-only; nothing is created), plus any listed in a
    legacy ``projects.json``."""
    names: set[str] = set()
    database = paths.home / "memory.db"
    if database.exists():
        try:
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
            try:
                names.update(str(row[0]) for row in conn.execute("SELECT name FROM projects"))
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # a database being created or migrated: report what projects.json says
    try:
        data = json.loads(paths.projects_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        data = {}
    projects = data.get("projects", {}) if isinstance(data, dict) else {}
    if isinstance(projects, dict):
        names.update(projects)
    return sorted(names)


def memory_project(paths: Paths, project_dir: Path, configured: str) -> str:
    """The memory project hooks use for ``project_dir`` (read-only): ``memory.project`` if set, else the project
    registered for the directory, else the name it will get on first use."""
    from ultramax.memory.projects import project_name_for

    if configured:
        return configured
    database = paths.home / "memory.db"
    if database.exists():
        try:
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
            try:
                row = conn.execute("SELECT name FROM projects WHERE path = ?", (str(project_dir),)).fetchone()
            finally:
                conn.close()
            if row:
                return str(row[0])
        except sqlite3.Error:
            pass
    return project_name_for(project_dir)


def status_report(paths: Paths, project_dir: Path, *, verify_audit: bool = True) -> dict[str, Any]:
    settings = load_settings(paths, project_dir)
    selection = detect_mode(project_dir, settings)
    daemon = daemon_status(paths)
    breakers: dict[str, Any] = daemon.detail.get("circuit_breakers", {})
    projects = known_projects(paths)
    switch = KillSwitch(paths.kill_switch)
    report: dict[str, Any] = {
        "version": __version__,
        "available": daemon.running,
        "daemon": {
            "running": daemon.running,
            "pid": daemon.pid,
            "socket": daemon.socket,
            "metrics_url": daemon.detail.get("metrics_url"),
            "handled": daemon.detail.get("handled"),
            "uptime_s": daemon.detail.get("uptime_s"),
            "problem": daemon.problem,
        },
        "mode": {"name": selection.mode.name, "source": selection.source, "safety_level": selection.mode.safety_level},
        "current_project": memory_project(paths, project_dir, str(settings.get("memory.project") or "")),
        "mode_memory_project": selection.mode.memory_project,
        "project_dir": str(project_dir),
        "projects_count": len(projects),
        "projects": projects,
        "circuit_breaker": {
            "open": any(b.get("open") for b in breakers.values()),
            "failures": sum(int(b.get("failures", 0)) for b in breakers.values()),
        },
        "circuit_breakers": breakers,
        "kill_switch": {"engaged": switch.engaged, "path": str(switch.path), "note": switch.note() or None},
        "settings_problems": [str(p) for p in settings.problems],
    }
    if verify_audit:
        try:
            audit = verify(paths.audit_log, paths.audit_head)
        except AuditError as exc:  # one unreadable part is reported in its place; the rest of the status stands
            report["audit"] = {"path": str(paths.audit_log), "records": None, "verified": False, "error": str(exc)}
        else:
            report["audit"] = {"path": str(paths.audit_log), "records": audit.records, "verified": audit.ok}
    return report
