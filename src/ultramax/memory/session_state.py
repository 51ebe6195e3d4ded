"""Small per-session state in the memory database: JSON values by (project, session, key).

Capture keeps what it needs from one hook event to the next here (the last prompt, the edits since a failure),
and injection what it has already shown in a session.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ultramax.memory.database import SQLiteDatabase

__all__ = ["SessionState"]


class SessionState(SQLiteDatabase):
    """The capture_state table: a value is set, replaced, or (set to None) removed."""

    def get_state(self, project_id: int, session_id: str, key: str) -> Any:
        row = (
            self._conn()
            .execute(
                "SELECT value FROM capture_state WHERE project_id = ? AND session_id = ? AND key = ?",
                (project_id, session_id, key),
            )
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def set_state(self, project_id: int, session_id: str, key: str, value: Any) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute(
                    "DELETE FROM capture_state WHERE project_id = ? AND session_id = ? AND key = ?",
                    (project_id, session_id, key),
                )
            else:
                conn.execute(
                    "INSERT INTO capture_state (project_id, session_id, key, value, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (project_id, session_id, key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (project_id, session_id, key, json.dumps(value), time.time()),
                )
