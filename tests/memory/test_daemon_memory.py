"""Memory in the real daemon: background embedding, nothing lost to kill -9 or to concurrent sessions."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from tests.conftest import (
    UltramaxEnv,
    finish_daemon,
    hook_payload,
    run_hook_process,
    spawn_daemon_process,
    wait_for,
)
from ultramax.daemon import daemon_status
from ultramax.memory.store import SQLiteStore, database_path


def prompt_text(session: int, n: int) -> str:
    return f"note {session}-{n}: service {session * 100 + n} listens on port {8000 + session * 100 + n}"


def send(project: Path, session: int, n: int) -> bool:
    payload = hook_payload(
        "UserPromptSubmit", session_id=f"session-{session}", cwd=str(project), prompt=prompt_text(session, n)
    )
    return run_hook_process("UserPromptSubmit", payload, project_dir=project).code == 0


def stored_texts(umx: UltramaxEnv) -> set[str]:
    store = SQLiteStore(database_path(umx.paths))
    try:
        return {p.text for p in store.iter_passages()}
    finally:
        store.close()


def unembedded(umx: UltramaxEnv) -> int:
    store = SQLiteStore(database_path(umx.paths))
    try:
        return len(store.unembedded(10_000))
    finally:
        store.close()


def test_the_daemon_embeds_captured_prompts_in_the_background(umx: UltramaxEnv) -> None:
    project = umx.project("acme-api")
    daemon = spawn_daemon_process(umx)
    try:
        assert all(send(project, 1, n) for n in range(3))
        assert prompt_text(1, 2) in stored_texts(umx), "stored before the hook was answered"
        wait_for(lambda: unembedded(umx) == 0, 60, "the background writer to embed every passage")
        assert send(project, 1, 3)  # searched with the model loaded: the tiers' latency shows in the status
        memory = daemon_status(umx.paths).detail["memory"]
        assert memory["passages"] == 4 and memory["embeddings"] is True
        assert {"L1", "L3"} <= set(memory["tiers"]) and memory["tiers"]["L3"]["p50_ms"] >= 0
    finally:
        finish_daemon(daemon)


def test_kill_9_during_ingestion_keeps_every_acknowledged_passage_of_concurrent_sessions(umx: UltramaxEnv) -> None:
    project = umx.project("acme-api")
    daemon = spawn_daemon_process(umx)
    acked: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def session(s: int) -> None:
        for n in range(10):
            if send(project, s, n):
                with lock:
                    acked.append(prompt_text(s, n))
                    if len(acked) >= 12:
                        enough.set()

    threads = [threading.Thread(target=session, args=(s,)) for s in range(1, 4)]
    for t in threads:
        t.start()
    assert enough.wait(120), "the daemon acknowledged too few prompts"
    os.kill(daemon.pid, signal.SIGKILL)  # mid-stream: the writer is embedding, sessions keep sending
    for t in threads:
        t.join(180)
    daemon.proc.wait(10)
    assert daemon.proc.returncode == -signal.SIGKILL
    store = SQLiteStore(database_path(umx.paths))
    try:
        assert store.integrity_check() == []
    finally:
        store.close()
    missing = set(acked) - stored_texts(umx)
    assert not missing, f"{len(missing)} acknowledged passages lost"
    assert len(acked) == 30, "sessions after the kill were answered by the in-process fallback, which stores too"
    restarted = spawn_daemon_process(umx)
    try:
        wait_for(lambda: unembedded(umx) == 0, 90, "the restarted daemon to embed the backlog")
    finally:
        finish_daemon(restarted)
