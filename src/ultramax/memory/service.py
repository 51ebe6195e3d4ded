"""The memory engine every face uses: store, capture, embeddings, tiered search and injection.

Three ways to run it:

- **daemon** (``background=True``): captured text is committed at once (so whatever a hook was answered
  for survives ``kill -9``) and a background writer thread embeds new passages in batches and feeds the
  vector index and the hot tier -- the hook never waits for an embedding.
- **CLI / MCP server** (``embeddings=True``): explicit saves are embedded before they return.
- **hook fallback** (``embeddings=False``): no numpy, no model -- text is stored and searched with FTS5
  only; the daemon embeds the backlog when it next starts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultramax.events import HookEvent
from ultramax.memory.capture import MAX_PASSAGE_CHARS, Capture, clean, is_question
from ultramax.memory.fts import STOPWORDS, fts_query
from ultramax.memory.inject import prompt_context, session_start_context, superseded_notes
from ultramax.memory.models import (
    SEED_KINDS,
    MemoryStoreError,
    NewPassage,
    Passage,
    Project,
    SearchHit,
    SearchResult,
    Tier,
)
from ultramax.memory.store import SQLiteStore
from ultramax.paths import Paths

if TYPE_CHECKING:
    from ultramax.memory.embed import Embedder
    from ultramax.memory.search import HybridSearcher
    from ultramax.memory.tiers import TieredMemory

__all__ = ["MemoryService"]

log = logging.getLogger("ultramax.memory")

_DURABLE_KINDS = tuple(k for k in SEED_KINDS if k not in ("bug_fix", "file_change"))
_STARTUP_QUOTAS = (
    (_DURABLE_KINDS, 6),  # decisions and lessons hold until changed: a busy day of edits must not hide them
    (("bug_fix",), 2),
    (("answer",), 2),
    (("prompt",), 4),
    (("file_change",), 3),
)


_REDACTED_ONLY = re.compile(r"^[-+ ]?\s*[\w.\-]+\s*[=:]\s*\[REDACTED:[\w-]+\]\s*$")


def _worth_a_startup_place(p: Passage) -> bool:
    """Whether a recent item tells the next session something. Not: a question (what answered it is its own
    item), a two-word prompt ("run the tests") or answer ("Done."), nor an edit whose every changed line is a
    redacted value (an .env file: all it could say is that a secret changed)."""
    if p.kind == "prompt" and (is_question(p.text) or len(p.text.split()) < 4):
        return False
    if p.kind == "answer" and len(p.text.split()) < 6:
        return False
    if p.kind == "file_change":
        body = [line for line in p.text.splitlines()[1:] if line.strip() and not line.startswith("@@")]
        if body and all(_REDACTED_ONLY.match(line) for line in body):
            return False
    return True


class MemoryService:
    def __init__(
        self,
        paths: Paths,
        *,
        background: bool = False,
        embeddings: bool = True,
        embedder: Embedder | None = None,
        store: SQLiteStore | None = None,
    ) -> None:
        self.paths = paths
        self._store = store
        self._store_lock = threading.Lock()
        self.background = background
        self.embeddings = embeddings or embedder is not None
        self._embedder = embedder
        self._searcher: HybridSearcher | None = None
        self._tiers: TieredMemory | None = None
        self._init_lock = threading.Lock()
        self._projects: dict[tuple[str | None, str | None], Project] = {}
        self._injected: dict[str, set[int]] = {}
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None
        self.embed_error: str | None = None
        self.embedded_total = 0
        if background:
            self._writer = threading.Thread(target=self._run_writer, name="ultramax-memory-writer", daemon=True)
            self._writer.start()

    @property
    def store(self) -> SQLiteStore:
        """Opened on first use: a hook event the memory stage ignores (PreToolUse) never touches the file."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = SQLiteStore.open(self.paths)
        return self._store

    def store_replaced(self) -> bool:
        """Whether the database file was moved or replaced since this process opened it."""
        return self._store is not None and self._store.replaced()

    # -- lazy engines ----------------------------------------------------------------------------------------
    @property
    def search_ready(self) -> bool:
        return self._tiers is not None

    def _engines(self) -> TieredMemory | None:
        """The tiered searcher (numpy + the model), created on first use; None where embeddings are off."""
        if not self.embeddings:
            return None
        if self._tiers is not None:
            return self._tiers
        if self.background and threading.current_thread() is not self._writer:
            return None  # the writer thread is still loading the model: answer with keywords meanwhile
        with self._init_lock:
            if self._tiers is None:
                from ultramax.memory.embed import default_embedder
                from ultramax.memory.search import HybridSearcher
                from ultramax.memory.tiers import TieredMemory

                embedder = self._embedder or default_embedder()
                self._searcher = HybridSearcher(self.store, embedder)
                self._searcher.sync()
                self._tiers = TieredMemory(self._searcher)
            return self._tiers

    @property
    def tiers(self) -> TieredMemory:
        engines = self._engines()
        if engines is None:
            raise MemoryStoreError("vector search is not available in this process")
        return engines

    # -- background writer -------------------------------------------------------------------------------------
    def _run_writer(self) -> None:
        try:
            self._engines()
            self._ready.set()
        except Exception as exc:  # the model failed to load: keep serving with keywords only
            self.embed_error = f"{type(exc).__name__}: {exc}"
            log.exception("memory embeddings unavailable; keyword search only")
            self.embeddings = False
        while not self._stopping.is_set():
            try:
                while self.embeddings and self.embed_pending() > 0 and not self._stopping.is_set():
                    pass
            except Exception:  # a bad batch must not kill the writer: log it, retry on the next wake
                log.exception("memory embedding batch failed")
            with self._idle:
                self._idle.notify_all()
            self._wake.wait(30.0)
            self._wake.clear()

    def embed_pending(self, batch: int = 64) -> int:
        """Embed up to ``batch`` passages that have no vector yet; returns how many were embedded."""
        tiers = self._engines()
        if tiers is None or self._searcher is None or self._searcher.embedder is None:
            return 0
        rows = self.store.unembedded(batch)
        if not rows:
            return 0
        vectors = self._searcher.embedder.embed([r[3] for r in rows])
        self.store.set_embeddings(
            [(r[0], vectors[i].astype("float32").tobytes()) for i, r in enumerate(rows)], self._searcher.embedder.name
        )
        self._searcher.sync()
        for i, (pid, project_id, created, _) in enumerate(rows):
            tiers.hot.admit(project_id, pid, vectors[i], created)
        self.embedded_total += len(rows)
        return len(rows)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every stored passage has its embedding (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout
        if not self.background:
            while self.embed_pending() > 0:
                pass
            return not self.embeddings or not self.store.unembedded(1)
        while self.embeddings and self.store.unembedded(1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._idle:
                self._wake.set()
                self._idle.wait(min(remaining, 1.0))
        return True

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
        if self._searcher is not None:
            self._searcher.close()
        if self._store is not None:
            self._store.close()

    # -- projects ----------------------------------------------------------------------------------------------
    def project_for(self, directory: Path | None, name: str | None = None) -> Project | None:
        key = (str(directory) if directory else None, name or None)
        cached = self._projects.get(key)
        if cached is not None:
            return cached
        if name:
            project = self.store.ensure_project(name)
        elif directory is not None:
            project = self.store.project_for_dir(directory)
        else:
            return None
        self._projects[key] = project
        return project

    def capture_allowed(self, project: Project) -> bool:
        fresh = self.store.get_project(project.name)
        return bool(fresh and fresh.capture)

    # -- writing ------------------------------------------------------------------------------------------------
    def capture(self, project: Project, event: HookEvent) -> list[int]:
        """Store what ``event`` holds worth remembering (text now; the embedding follows in the background)."""
        session = event.session_id or "-"
        capture = Capture(
            get_state=lambda key: self.store.get_state(project.id, session, key),
            set_state=lambda key, value: self.store.set_state(project.id, session, key, value),
        )
        # one transaction for the session state and the passages: a failed insert (a full disk, a kill) must
        # not leave the state saying a failure was already answered by a fix that was never stored
        with self.store.transaction():
            passages = capture.passages(event)
            ids = self.store.add_passages(project.name, passages) if passages else []
        if ids:
            self._after_write()
        return ids

    def save(
        self,
        project: str,
        content: str,
        *,
        kind: str = "general",
        session_id: str | None = None,
        tags: Sequence[str] = (),
        source: str = "explicit save",
    ) -> list[int]:
        """An explicit save (CLI, MCP tool), cleaned like captured text and embedded before returning; the ids of
        its passages. Text longer than one passage holds is stored whole as consecutive passages, split at
        paragraph or line ends, rather than cut (capture trims what it records; a deliberate save does not)."""
        text = clean(content, max_chars=None)
        if not text:
            raise MemoryStoreError("nothing to save: the content is empty once private spans are removed")
        self.store.ensure_project(project)
        ids = self.store.add_passages(
            project,
            [
                NewPassage(part, kind=kind, session_id=session_id, source=source, source_event="save", tags=tuple(tags))
                for part in split_passages(text, MAX_PASSAGE_CHARS)
            ],
        )
        self._after_write()
        return ids

    def _after_write(self) -> None:
        if self.background:
            self._wake.set()
        elif self.embeddings:
            while self.embed_pending() > 0:
                pass

    def forget(self, passage_id: int) -> bool:
        removed = self.store.forget(passage_id)
        if removed and self._tiers is not None and self._searcher is not None and self._searcher.index is not None:
            self._searcher.index.remove([passage_id])
            self._tiers.hot.forget(passage_id)
        return removed

    # -- reading ------------------------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        project: str | None,
        session_id: str | None = None,
        limit: int = 5,
        max_tier: Tier | None = None,
        now: float | None = None,
        early_stop: bool = True,
        use_time_filter: bool = True,
    ) -> SearchResult:
        tiers = self._engines()
        if tiers is None:
            return SearchResult(self.keyword_search(query, project=project, limit=limit), answered_by="keywords")
        return tiers.search(
            query,
            project=project,
            session_id=session_id,
            limit=limit,
            max_tier=max_tier or Tier.L3,
            now=now,
            early_stop=early_stop,
            use_time_filter=use_time_filter,
        )

    def keyword_search(self, query: str, *, project: str | None, limit: int) -> list[SearchHit]:
        """FTS5 only -- what the hook fallback can do without numpy."""
        project_ids = None
        if project is not None:
            p = self.store.get_project(project)
            if p is None:
                return []
            project_ids = [p.id]
        found = self.store.keyword_search(project_ids, fts_query(query), limit)
        passages = self.store.get_passages([pid for pid, _ in found])
        return [
            SearchHit(passages[pid], -score, "L3", None, {"bm25": rank})
            for rank, (pid, score) in enumerate(found, start=1)
            if pid in passages
        ]

    # -- injection -------------------------------------------------------------------------------------------
    def session_start_context(self, project: Project, budget: int) -> str | None:
        blocks = self.store.blocks(project.name)
        recent: list[Passage] = []
        seen: set[int] = set()
        for kinds, n in _STARTUP_QUOTAS:
            found = [
                p
                for p in self.store.recent(project.name, kinds=kinds, limit=n * 3)
                if p.id not in seen and _worth_a_startup_place(p)
            ]
            for p in distinct(found, n):
                seen.add(p.id)
                recent.append(p)
        return session_start_context(project.name, blocks, recent, budget, self._superseded(project, recent))

    def prompt_context(
        self,
        project: Project,
        session_id: str,
        prompt: str,
        budget: int,
        *,
        limit: int = 5,
        min_similarity: float = 0.35,
        hierarchical: bool = True,
    ) -> tuple[str | None, list[int]]:
        """Memories relevant to a prompt, not already shown in this session; (context, passage ids)."""
        query = clean(prompt)
        if len(query) < 8:
            return None, []
        shown = self._injected.get(session_id)
        if shown is None:  # a hook process without the daemon keeps what it showed in the store instead
            saved = self.store.get_state(project.id, session_id, INJECTED_STATE) if not self.background else None
            shown = self._injected[session_id] = {int(i) for i in saved} if isinstance(saved, list) else set()
        # a prompt's time words are about the task ("today's visitors"), not a request to filter memory by date
        result = self.search(
            query,
            project=project.name,
            session_id=None,
            limit=limit + len(shown) + 6,
            early_stop=hierarchical,
            use_time_filter=False,
        )
        wanted = " ".join(query.lower().split())
        eligible: list[Passage] = []
        for hit in result.hits:
            p = hit.passage
            if p.id in shown or " ".join(p.text.lower().split()) == wanted:
                continue
            if session_id and p.session_id == session_id:
                continue  # this session's own turns are already in the conversation
            if p.kind == "prompt" and is_question(p.text):
                continue  # an earlier question carries no answer; what answered it is its own passage
            sim = hit.similarity if hit.similarity is not None else self._similarity(query, p, project)
            if sim is not None and sim < min_similarity:
                continue
            if sim is None and len(shared_words(query, p.text)) < min(2, len(content_words(query))):
                continue  # keywords only: one common word ("tests") is not relevance
            eligible.append(p)
        picked = distinct(eligible, limit)
        if not picked:
            return None, []
        text = prompt_context(project.name, picked, budget, self._superseded(project, picked))
        if text is None:
            return None, []
        ids = [p.id for p in picked if f"#{p.id}]" in text]
        shown.update(ids)
        if not self.background:
            self.store.set_state(project.id, session_id, INJECTED_STATE, sorted(shown)[-500:])
        if len(self._injected) > 1000:
            self._injected.clear()
        return text, ids

    def _superseded(self, project: Project, items: Sequence[Passage]) -> dict[int, str]:
        """Notes for the items that name a value a later edit of the project replaced."""
        if not items:
            return {}
        since = min(p.created_at for p in items)
        changes = self.store.recent(project.name, kinds=("file_change",), since=since, limit=300)
        return superseded_notes(items, changes)

    def _similarity(self, query: str, passage: Passage, project: Project) -> float | None:
        searcher = self._searcher
        if searcher is None or searcher.index is None or not passage.embedded:
            return None
        p = project if passage.project == project.name else self.store.get_project(passage.project)
        vec = searcher.index.vector(p.id, passage.id) if p else None
        qv = searcher.embed_query(query)
        if vec is None or qv is None:
            return None
        return float(vec @ qv)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "database": str(self.store.path),
            "passages": self.store.count(),
            "projects": self.store.counts_by_project(),
            "unembedded": self.store.unembedded_count(),
            "embeddings": self.embeddings,
            "embed_error": self.embed_error,
        }
        if self._tiers is not None:
            out["tiers"] = self._tiers.latency_summary()
            out["hot"] = self._tiers.hot.stats()
        return out


def distinct(passages: Sequence[Passage], limit: int) -> list[Passage]:
    """Up to ``limit`` of ``passages`` (best first) that each say something the others do not: a failure whose
    fix is among them is told by the fix, and a test command that passed again is shown once."""
    fixed = {(p.session_id, p.source) for p in passages if p.kind == "bug_fix"}
    runs: set[str | None] = set()
    out: list[Passage] = []
    for p in passages:
        if "failed" in p.tags and (p.session_id, p.source) in fixed:
            continue
        if p.kind == "test_run" and "failed" not in p.tags:
            if p.source in runs:
                continue
            runs.add(p.source)
        out.append(p)
        if len(out) >= limit:
            break
    return out


def split_passages(text: str, size: int) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, cut after a paragraph, else a line, else a word."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > size:
        window = rest[:size]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or max(window.rfind(" "), 0) or size
        if cut < size // 4:  # no break in a sensible place: cut at the limit
            cut = size
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return parts


INJECTED_STATE = "injected"
"""Session state key: the passages already injected in a session (kept by hook processes without the daemon)."""
_WORD = re.compile(r"[^\W_]{3,}")


def content_words(text: str) -> set[str]:
    """A text's words that carry meaning, lower-cased and crudely singular ("tests" and "test" meet)."""
    return {w.lower().rstrip("s") for w in _WORD.findall(text) if w.lower() not in STOPWORDS}


def shared_words(query: str, text: str) -> set[str]:
    return content_words(query) & content_words(text)
