"""The memory commands: the seed's ``list-projects``, ``create-project``, ``search``, ``save`` (section 13)
and ``ultramax memory blocks|forget|export|import|eval|mcp|capture|stats``."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ultramax.cli.base import CliContext, Subparsers, count, emit_json, whole_number
from ultramax.config import load_settings
from ultramax.memory.models import KINDS, MemoryStoreError, iso_date, kind_label

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    lp = sub.add_parser("list-projects", help="memory projects and how many passages each holds")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(func=cmd_list_projects)

    cp = sub.add_parser("create-project", help="create a memory project (with the seed's five core blocks)")
    cp.add_argument("name", help="project name: letters, digits, '.', '_' or '-'")
    cp.set_defaults(func=cmd_create_project)

    se = sub.add_parser("search", help="search memory: keywords + meaning, L1 hot to L4 all projects")
    se.add_argument("--project", help="memory project (default: the current directory's)")
    se.add_argument("--query", required=True, help="what to look for; 'last week', 'since 2026-11-01' filter by time")
    se.add_argument("--limit", type=whole_number(1), default=5, help="most results (default 5)")
    se.add_argument("--all-projects", action="store_true", help="search every project (tier L4)")
    se.add_argument("--json", action="store_true", help="machine-readable output, with per-tier latency")
    se.set_defaults(func=cmd_search)

    sv = sub.add_parser("save", help="save a memory explicitly (secrets and <private> spans are never stored)")
    sv.add_argument("--project", help="memory project (default: the current directory's)")
    sv.add_argument("--content", required=True, help="what to remember")
    sv.add_argument("--type", default="general", choices=KINDS, help="kind of memory (default general)")
    sv.set_defaults(func=cmd_save)

    mem = sub.add_parser("memory", help="core blocks, forget, export/import, retrieval eval, MCP server")
    cmds = mem.add_subparsers(dest="memory_command", metavar="ACTION", required=True)

    blocks = cmds.add_parser("blocks", help="core memory blocks: show, edit, history, diff, undo")
    bcmds = blocks.add_subparsers(dest="blocks_command", metavar="ACTION", required=True)
    show = bcmds.add_parser("show", help="all blocks, or one")
    show.add_argument("label", nargs="?", help="block label (default: all)")
    _project_arg(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_blocks_show)
    edit = bcmds.add_parser("edit", help="set a block's value (a new version; the limit is enforced)")
    edit.add_argument("label", help="block label (a new label creates a custom block)")
    value = edit.add_mutually_exclusive_group()
    value.add_argument("--value", help="the new value")
    value.add_argument("--append", metavar="TEXT", help="add a line to the current value")
    value.add_argument("--file", type=Path, help="read the new value from a file ('-' = stdin)")
    edit.add_argument(
        "--limit",
        type=whole_number(1),
        metavar="CHARS",
        help="change the block's character limit (alone: keep the value)",
    )
    _project_arg(edit)
    edit.set_defaults(func=cmd_blocks_edit)
    hist = bcmds.add_parser("history", help="a block's versions")
    hist.add_argument("label")
    _project_arg(hist)
    hist.add_argument("--json", action="store_true", help="machine-readable output")
    hist.set_defaults(func=cmd_blocks_history)
    diff = bcmds.add_parser("diff", help="what changed between two versions (default: the last change)")
    diff.add_argument("label")
    diff.add_argument("--from", dest="from_version", type=int, help="older version")
    diff.add_argument("--to", dest="to_version", type=int, help="newer version (default: current)")
    _project_arg(diff)
    diff.set_defaults(func=cmd_blocks_diff)
    undo = bcmds.add_parser("undo", help="go back to the value before the last change (repeatable)")
    undo.add_argument("label")
    _project_arg(undo)
    undo.set_defaults(func=cmd_blocks_undo)

    forget = cmds.add_parser("forget", help="delete a passage by id (ids are shown by search)")
    forget.add_argument("id", type=whole_number(1), help="the passage's id (#12 in `ultramax search`: give 12)")
    forget.set_defaults(func=cmd_forget)

    exp = cmds.add_parser("export", help="write memory as JSON Lines (stdout or --out)")
    _project_arg(exp, help_text="only this project (default: all)")
    exp.add_argument("--out", type=Path, help="file to write (default: stdout)")
    exp.set_defaults(func=cmd_export)
    imp = cmds.add_parser(
        "import",
        help="load a JSON Lines export: all of it or, on a bad line, none (stored passages are skipped; "
        "secrets and <private> spans are dropped)",
    )
    imp.add_argument("file", type=Path, help="export file ('-' = stdin)")
    imp.add_argument(
        "--project",
        metavar="NAME",
        help="load a one-project export into project NAME instead of its own (created if needed)",
    )
    imp.set_defaults(func=cmd_import)

    ev = cmds.add_parser("eval", help="score retrieval on a LoCoMo-format file (recall@k, MRR, latency)")
    ev.add_argument("--locomo", type=Path, required=True, metavar="FILE", help="a file in the LoCoMo format")
    ev.add_argument(
        "--fusion",
        action="append",
        choices=("rrf", "weighted", "vector", "bm25"),
        help="fusion to score (repeatable; default weighted)",
    )
    ev.add_argument("--conversations", type=whole_number(1), metavar="N", help="only the first N conversations")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.set_defaults(func=cmd_eval)

    mcp = cmds.add_parser("mcp", help="run the memory MCP server on stdio (search, save, block read/update)")
    _project_arg(mcp)
    mcp.set_defaults(func=cmd_mcp)

    cap = cmds.add_parser("capture", help="switch automatic capture on or off for a project")
    cap.add_argument("state", choices=("on", "off", "status"))
    _project_arg(cap)
    cap.set_defaults(func=cmd_capture)

    st = cmds.add_parser("stats", help="passages per project, embedding backlog, database")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_stats)


def _project_arg(
    p: argparse.ArgumentParser, help_text: str = "memory project (default: the current directory's)"
) -> None:
    p.add_argument("--project", help=help_text)


def _service(ctx: CliContext, *, embeddings: bool = True):  # type: ignore[no-untyped-def]
    from ultramax.memory.service import MemoryService

    return MemoryService(ctx.paths, embeddings=embeddings)


def _project(ctx: CliContext, service: object, explicit: str | None, *, create: bool = True) -> str:
    from ultramax.memory.service import MemoryService

    assert isinstance(service, MemoryService)
    if explicit:
        known = service.store.get_project(explicit) is not None
        if not create and not known:
            raise MemoryStoreError(f"no memory project named {explicit!r}; see `ultramax list-projects`")
        if not create:
            return explicit
        name = service.store.ensure_project(explicit).name  # an invalid name fails here, before any "created"
        if not known:  # the seed's commands create a project on first use; a typo should not pass unnoticed
            print(f"created memory project {explicit!r} (see `ultramax list-projects`)", file=sys.stderr)
        return name
    configured = load_settings(ctx.paths, ctx.project_dir).get("memory.project")
    if configured and create:
        return str(service.store.ensure_project(configured).name)
    if configured:  # a read never creates a project
        if service.store.get_project(str(configured)) is None:
            raise MemoryStoreError(f"no memory project named {configured!r} yet (memory.project in settings)")
        return str(configured)
    if create:
        return service.store.project_for_dir(ctx.project_dir).name
    found = service.store.project_of_dir(ctx.project_dir)
    if found is None:
        raise MemoryStoreError(
            f"no memory project for {ctx.project_dir} yet: it gets one when Claude Code or `ultramax save` first "
            "stores something here; `ultramax list-projects` shows the others (use --project NAME)"
        )
    return found.name


# -- the seed's commands ----------------------------------------------------------------------------------------
def cmd_list_projects(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    counts = service.store.counts_by_project()
    projects = service.store.list_projects()
    if args.json:
        emit_json([{**p.to_dict(), "passages": counts.get(p.name, 0)} for p in projects])
        return 0
    if not projects:
        print("no memory projects yet: `ultramax create-project NAME`, or use Claude Code with the hooks installed")
    for p in projects:
        where = f"  {p.path}" if p.path else ""
        capture = "" if p.capture else "  (capture off)"
        print(f"  - {p.name}  {count(counts.get(p.name, 0), 'passage')}{capture}{where}")
    return 0


def cmd_create_project(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    existed = service.store.get_project(args.name) is not None
    project = service.store.ensure_project(args.name)
    print(
        f"Project {'exists' if existed else 'created'}: {project.name} (core blocks: "
        f"{', '.join(b.label for b in service.store.blocks(project.name))})"
    )
    return 0


def cmd_search(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.memory.tiers import Tier

    service = _service(ctx)
    project = _project(ctx, service, args.project, create=False)
    result = service.search(
        args.query, project=project, limit=args.limit, max_tier=Tier.L4 if args.all_projects else Tier.L3
    )
    if args.json:
        emit_json(result.to_dict())
        return 0
    if not result.hits:
        print("no memories found")
    for hit in result.hits:
        p = hit.passage
        sim = f" sim {hit.similarity:.2f}" if hit.similarity is not None else ""
        print(f"#{p.id}  {iso_date(p.created_at)}  {p.kind}  [{p.project} · {hit.tier}{sim}]")
        print("    " + p.text.replace("\n", "\n    ")[:1000])
    tiers = ", ".join(f"{t.tier} {t.ms:.1f} ms" for t in result.tiers)
    print(f"({count(len(result.hits), 'result')}; {tiers})", file=sys.stderr)
    return 0


def cmd_save(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx)
    project = _project(ctx, service, args.project)
    ids = service.save(project, args.content, kind=args.type)
    more = f" (too long for one passage: saved whole as {len(ids)}, #{ids[0]}-#{ids[-1]})" if len(ids) > 1 else ""
    print(f"{kind_label(args.type).capitalize()} saved: {ids[0]}{more}")  # the seed's "Learning saved: ID" shape
    return 0


# -- blocks ------------------------------------------------------------------------------------------------------
def cmd_blocks_show(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    project = _project(ctx, service, args.project, create=False)
    blocks = [service.store.block(project, args.label)] if args.label else service.store.blocks(project)
    if args.json:
        emit_json([b.to_dict() for b in blocks])
        return 0
    for b in blocks:
        ro = ", read-only" if b.read_only else ""
        print(f"<{b.label}>  {len(b.value)}/{b.limit} chars, v{b.version}, {iso_date(b.updated_at)}{ro}")
        print(b.value if b.value else "  (empty)")
        print()
    return 0


def cmd_blocks_edit(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.memory.capture import clean

    service = _service(ctx, embeddings=False)
    project = _project(ctx, service, args.project)
    if args.append is not None:  # read and written in one transaction
        text = clean(args.append, max_chars=None) if args.append.strip() else ""
        block = service.store.update_block(project, args.label, text, mode="append", source="cli", limit=args.limit)
        print(f"{block.label}: v{block.version}, {len(block.value)}/{block.limit} chars")
        return 0
    current = None
    with contextlib.suppress(MemoryStoreError):
        current = service.store.block(project, args.label)
    if args.value is not None:
        new = args.value
    elif args.file is not None:
        new = _read_value(args.file)
    elif args.limit is not None:  # only the limit changes: no editor, the value stays
        new = current.value if current else ""
    else:
        new = _edit_in_editor(current.value if current else "")
    block = service.store.write_block(
        project, args.label, clean(new, max_chars=None) if new.strip() else "", source="cli", limit=args.limit
    )
    print(f"{block.label}: v{block.version}, {len(block.value)}/{block.limit} chars")
    return 0


def _read_value(path: Path) -> str:
    """A block's new value from ``--file`` ('-' = stdin); a file that cannot be read is a clear error."""
    # bytes, decoded here: stdin's own decoding lets bad bytes through as surrogates that SQLite then refuses
    if str(path) == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            data, name = path.read_bytes(), str(path)
        except OSError as exc:
            raise MemoryStoreError(
                f"cannot read {path}: {exc.strerror or exc}; nothing was changed. Give a text file, or '-' for stdin"
            ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MemoryStoreError(
            f"{name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); nothing was changed"
        ) from None


def _edit_in_editor(text: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise MemoryStoreError("give --value, --append or --file (or set $EDITOR to edit interactively)")
    with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as fh:
        fh.write(text)
        name = fh.name
    try:
        try:
            subprocess.run([*editor.split(), name], check=True)
        except OSError as exc:
            raise MemoryStoreError(
                f"cannot start the editor {editor!r} ($VISUAL or $EDITOR): {exc.strerror or exc}; nothing was changed."
                " Set $EDITOR to an editor on PATH, or give --value, --append or --file"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise MemoryStoreError(
                f"the editor {editor!r} exited with status {exc.returncode}; nothing was changed"
            ) from None
        return Path(name).read_text(encoding="utf-8")
    finally:
        Path(name).unlink(missing_ok=True)


def cmd_blocks_history(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    project = _project(ctx, service, args.project, create=False)
    versions = service.store.block_history(project, args.label)
    if args.json:
        emit_json(
            [
                {
                    "version": v.version,
                    "chars": len(v.value),
                    "limit": v.limit,
                    "source": v.source,
                    "parent": v.parent,
                    "created_at": iso_date(v.created_at, seconds=True),
                }
                for v in versions
            ]
        )
        return 0
    for v in versions:
        print(f"v{v.version}  {iso_date(v.created_at, seconds=True)}  {len(v.value)}/{v.limit} chars  {v.source}")
    return 0


def cmd_blocks_diff(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    project = _project(ctx, service, args.project, create=False)
    versions = {v.version: v for v in service.store.block_history(project, args.label)}
    span = f"v1 to v{max(versions)}" if len(versions) > 1 else "only v1"
    for wanted in (args.from_version, args.to_version):
        if wanted is not None and wanted not in versions:
            raise MemoryStoreError(
                f"block {args.label!r} has no version {wanted} (it has {span}; see `ultramax memory blocks history`)"
            )
    newer = versions[max(versions) if args.to_version is None else args.to_version]
    older_v = newer.parent if args.from_version is None else args.from_version
    if older_v is None:
        print(f"v{newer.version} is the first version")
        return 0
    older = versions[older_v]
    if older.limit != newer.limit:
        print(f"limit: {older.limit:,} -> {newer.limit:,} characters")
    if older.value == newer.value:
        print(f"the text of v{older.version} and v{newer.version} is the same")
        return 0
    for line in difflib.unified_diff(
        older.value.splitlines(keepends=True),
        newer.value.splitlines(keepends=True),
        fromfile=f"{args.label} v{older.version}",
        tofile=f"{args.label} v{newer.version}",
    ):
        # a last line without a newline is marked as diff(1) does, instead of running into the next line
        sys.stdout.write(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n")
    return 0


def cmd_blocks_undo(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    project = _project(ctx, service, args.project, create=False)  # a new project has nothing to undo
    block = service.store.undo_block(project, args.label)
    print(f"{block.label}: back to the earlier value as v{block.version} ({len(block.value)}/{block.limit} chars)")
    return 0


# -- the rest ----------------------------------------------------------------------------------------------------
def cmd_forget(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    if not service.forget(args.id):
        raise MemoryStoreError(
            f"no passage with id {args.id} (already forgotten?); `ultramax search --query ...` shows ids as #ID"
        )
    print(f"forgotten: {args.id}")
    return 0


def cmd_export(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.fsutil import atomic_writer
    from ultramax.memory import io

    service = _service(ctx, embeddings=False)
    records = io.export_records(service.store, args.project)  # an unknown project fails before any file is touched
    if args.out is None:
        io.write_jsonl(records, sys.stdout)
        return 0
    try:
        with atomic_writer(args.out, mode=0o600) as fh:  # 0600: an export can hold private memory
            n = io.write_jsonl(records, fh)
    except OSError as exc:
        fix = "free some space or choose another --out" if exc.errno == errno.ENOSPC else "choose another --out"
        raise MemoryStoreError(
            f"cannot write the export to {args.out}: {exc.strerror or exc}; any earlier file there is untouched. "
            f"{fix[0].upper()}{fix[1:]}"
        ) from exc
    print(f"exported {count(n, 'record')} to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.memory.io import import_records

    if str(args.file) == "-":
        data, source = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            data, source = args.file.read_bytes(), str(args.file)
        except OSError as exc:
            raise MemoryStoreError(
                f"cannot read {args.file}: {exc.strerror or exc}; give a file written by `ultramax memory export`"
            ) from exc
    service = _service(ctx)
    created = args.project is not None and service.store.get_project(args.project) is None
    # lines end at "\n" only, as export writes them; str.splitlines would also split inside a value at U+2028
    counts = import_records(service.store, data.split(b"\n"), source=source, project=args.project)
    if created:
        print(f"created memory project {args.project!r} (see `ultramax list-projects`)", file=sys.stderr)
    service.flush()
    skipped = f"; skipped {count(counts.duplicates, 'passage')} already in memory" if counts.duplicates else ""
    if counts.unchanged_blocks:
        skipped += f"; {count(counts.unchanged_blocks, 'block')} already as in the file"
    print(
        f"imported {count(counts.projects, 'project')}, {count(counts.blocks, 'block')}, "
        f"{count(counts.passages, 'passage')}{skipped}"
    )
    if not (counts.projects or counts.blocks or counts.passages or counts.duplicates or counts.unchanged_blocks):
        print(f"warning: {source} holds no records; was it written by `ultramax memory export`?", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.memory.locomo import evaluate

    reports = evaluate(
        args.locomo,
        fusions=tuple(args.fusion or ("weighted",)),
        limit_conversations=args.conversations,
        progress=None if args.json else (lambda m: print(m, file=sys.stderr)),
    )
    if args.json:
        emit_json({name: r.to_dict() for name, r in reports.items()})
        return 0
    for name, r in reports.items():
        recall = "  ".join(f"R@{k} {v:.3f}" for k, v in r.recall.items())
        print(f"{name:<9} {r.questions} questions  {recall}  MRR {r.mrr:.3f}  p50 {r.latency_ms['p50']} ms")
        for cat, row in r.per_category.items():
            print(f"          {cat:<16} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


def cmd_mcp(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.memory.mcp_server import serve

    return serve(ctx.paths, ctx.project_dir, args.project)


def cmd_capture(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    project = _project(ctx, service, args.project, create=args.state != "status")  # asking creates nothing
    if args.state != "status":
        service.store.set_capture(project, args.state == "on")
    p = service.store.get_project(project)
    assert p is not None
    print(f"capture for {p.name}: {'on' if p.capture else 'off'}")
    return 0


def cmd_stats(args: argparse.Namespace, ctx: CliContext) -> int:
    service = _service(ctx, embeddings=False)
    stats = service.stats()
    if args.json:
        emit_json(stats)
        return 0
    print(f"database   {stats['database']}")
    print(f"passages   {stats['passages']} ({stats['unembedded']} waiting for an embedding)")
    for name, n in stats["projects"].items():
        print(f"  {name:<24} {n}")
    return 0
