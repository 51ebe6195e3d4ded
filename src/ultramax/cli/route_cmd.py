"""``ultramax route explain|eval|calibrate|ledger|catalog`` and ``ultramax proxy``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ultramax.cli.base import CliContext, Subparsers, emit_json, whole_number
from ultramax.config import http_url_problem, load_settings
from ultramax.errors import ConfigError, UsageError
from ultramax.routing.analyzer import TaskAnalysis
from ultramax.routing.calibrate import Labelled, calibrate
from ultramax.routing.catalog import Catalog, Tier
from ultramax.routing.ledger import Ledger, ledger_path, restore_router
from ultramax.routing.router import Router

__all__ = ["evaluate_file", "read_labelled", "register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("route", help="the cost-aware model router: explain, evaluate, calibrate, show spend")
    cmds = p.add_subparsers(dest="route_command", metavar="ACTION", required=True)

    c = cmds.add_parser("explain", help="which tier and model a prompt would get, and why")
    c.add_argument("prompt", help="the prompt text")
    c.add_argument("--model", help="the model the client asks for (default: the top tier's)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_explain)

    c = cmds.add_parser("eval", help='score the router on JSONL lines of {"prompt", "tier"}')
    c.add_argument("file", type=Path, help="JSONL file; tier is the cheapest adequate tier (name or model id)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--show-misses", action="store_true", help="list the prompts routed to another tier")
    c.set_defaults(func=cmd_eval)

    c = cmds.add_parser("calibrate", help="fit routing.sonnetThreshold / opusThreshold to your own labelled prompts")
    c.add_argument("file", type=Path, help='JSONL file of {"prompt", "tier"}, tier the cheapest adequate one')
    c.add_argument(
        "--max-under", type=_fraction, default=0.05, help="the most under-routing to accept (0.05 = 5%%; from 0 to 1)"
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_calibrate)

    c = cmds.add_parser("ledger", help="what was spent (and saved) through the proxy")
    c.add_argument("--by", choices=("model", "session", "tier"), default="model", help="group rows by")
    c.add_argument("--hours", type=_hours, default=0.0, help="only the last N hours (default: everything)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_ledger)

    c = cmds.add_parser("catalog", help="tiers, model ids and prices in effect")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_catalog)

    p = sub.add_parser("proxy", help="run the routing proxy for ANTHROPIC_BASE_URL (loopback)")
    p.add_argument("--host", help="address to listen on (default: routing.proxyHost, 127.0.0.1)")
    p.add_argument(
        "--port", type=whole_number(0, 65535), help="port (default: routing.proxyPort, 8787; 0 picks a free one)"
    )
    p.add_argument("--upstream", help="where requests go (default: routing.upstream, https://api.anthropic.com)")
    p.add_argument("--quiet", action="store_true", help="no per-request log lines on stderr")
    p.set_defaults(func=cmd_proxy)


def _hours(text: str) -> float:
    """A number of hours for argparse: finite and not negative (0 = everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of hours: use a number >= 0 (0 = everything)")
    return value


def _fraction(text: str) -> float:
    """A share for argparse, at least 0 and under 1: checked before a long file is read and scored."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be at least 0 and under 1 (0.05 = 5%), not {text}")
    return value


def _router(ctx: CliContext) -> Router:
    return Router.from_settings(load_settings(ctx.paths, ctx.project_dir))


# -- explain -------------------------------------------------------------------------------------------------
def cmd_explain(args: argparse.Namespace, ctx: CliContext) -> int:
    router = _router(ctx)
    decision = router.explain_prompt(args.prompt, requested_model=args.model)
    if args.json:
        emit_json(decision.to_dict())
        return 0
    a = decision.analysis
    print(f"tier:       {decision.tier or '(none: the model is not in the catalog)'}")
    print(f"model:      {decision.model}" + ("" if decision.changed else " (as requested)"))
    if a is not None:
        learned = (
            f"the tier model picks {a.learned_tier}"
            if a.learned_tier
            else f"learned difficulty {a.difficulty:.2f} among {a.prompt_kind.replace('_', ' ')} prompts"
        )
        print(f"complexity: {a.complexity_score:.2f}  (task type {a.task_type}; {learned})")
        for family, hits in a.matched.items():
            print(f"  {family:<10} {', '.join(hits)}")
    print(f"estimate:   ${decision.estimated_cost:.4f} for this prompt alone")
    for reason in decision.reasons:
        print(f"because:    {reason}")
    if decision.fallbacks:
        print(f"fallbacks:  {', '.join(decision.fallbacks)} (on overload)")
    return 0


# -- eval ----------------------------------------------------------------------------------------------------
def read_labelled(path: Path, catalog: Catalog) -> list[tuple[int, str, Tier]]:
    """``(line number, prompt, tier)`` for each line of a JSONL file of ``{"prompt", "tier"}``; the tier is a
    routable tier's name (any case) or a model id. ConfigError names the file and line of a bad one."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of line 1
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    routable = ", ".join(t.name for t in catalog.routable)
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f'{where}: not valid JSON ({exc}); expected {{"prompt": ..., "tier": ...}}') from exc
        if not isinstance(item, dict):
            raise ConfigError(f'{where}: expected an object {{"prompt": ..., "tier": ...}}, got {type(item).__name__}')
        prompt, label = item.get("prompt"), item.get("tier")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f'{where}: "prompt" must be a non-empty string, got {json.dumps(prompt)[:60]}')
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f'{where}: "tier" must be a tier name ({routable}), got {json.dumps(label)[:60]}')
        tier = _label_tier(catalog, label.strip())
        if tier is None:
            raise ConfigError(f"{where}: tier {label!r} is neither a tier ({routable}) nor a known model")
        if not tier.routable:
            raise ConfigError(
                f"{where}: tier {label!r} is never a routing target, so the router cannot be scored against it; "
                f"label the cheapest adequate tier of {routable}"
            )
        out.append((number, prompt, tier))
    if not out:
        raise ConfigError(f"{path}: no lines to evaluate")
    return out


def _label_tier(catalog: Catalog, label: str) -> Tier | None:
    """The tier a label names: a tier name in any case ("HAIKU"), else a model id or family."""
    for tier in catalog.tiers:
        if tier.name.lower() == label.lower():
            return tier
    try:
        return catalog.resolve_tier(label.lower())
    except ConfigError:
        return None


SCORERS = (
    "tier model",
    "tier model, sure without the embedding",
    "tier model fallback",
    "patterns and difficulty",
    "no prompt",
)
"""What decided a prompt's complexity: the tier model with its sentence embedding, its fallback where it was
sure enough not to need it, its fallback standing in for it, or (general chat, benchmark questions) the seed's
patterns with the learned difficulty."""


def _scored_by(analysis: TaskAnalysis | None) -> str:
    if analysis is None:
        return SCORERS[4]
    if analysis.learned_tier:
        return SCORERS[{"main": 0, "confident": 1}.get(analysis.learned_head, 2)]
    return SCORERS[3]


def evaluate_file(router: Router, path: Path) -> dict[str, Any]:
    """Accuracy, under- and over-routing and cost against always-top-tier for lines {"prompt", "tier"}."""
    catalog = router.catalog
    top = catalog.top
    rows: list[dict[str, Any]] = []
    for number, prompt, want in read_labelled(path, catalog):
        decision = router.explain_prompt(prompt)
        got = catalog.tier(decision.tier)
        analysis = decision.analysis
        out_tokens = analysis.estimated_tokens if analysis else 1000
        in_tokens = len(prompt) // 4 + 1
        spec, top_spec = catalog.spec(got.model), catalog.spec(top.model)
        rows.append(
            {
                "line": number,
                "prompt": prompt,
                "label": want.name,
                "routed": got.name,
                "complexity": round(decision.complexity, 4),
                "cost": spec.estimate(in_tokens, out_tokens) if spec else 0.0,
                "top_cost": top_spec.estimate(in_tokens, out_tokens) if top_spec else 0.0,
                "under": got.rank < want.rank,
                "over": got.rank > want.rank,
                "scored_by": _scored_by(analysis),
            }
        )
    n = len(rows)
    cost = sum(r["cost"] for r in rows)
    top_cost = sum(r["top_cost"] for r in rows)
    confusion: dict[str, dict[str, int]] = {}
    for r in rows:
        confusion.setdefault(r["label"], {}).setdefault(r["routed"], 0)
        confusion[r["label"]][r["routed"]] += 1
    return {
        "file": str(path),
        "prompts": n,
        "accuracy": round(sum(1 for r in rows if not r["under"] and not r["over"]) / n, 4),
        "under_routing": round(sum(1 for r in rows if r["under"]) / n, 4),
        "over_routing": round(sum(1 for r in rows if r["over"]) / n, 4),
        "estimated_cost": round(cost, 6),
        "always_top_tier_cost": round(top_cost, 6),
        "cost_vs_top_tier": round(cost / top_cost, 4) if top_cost else 0.0,
        "top_tier": top.name,
        "confusion": confusion,
        "scored_by": {k: sum(r["scored_by"] == k for r in rows) for k in SCORERS},
        "misses": [
            {k: r[k] for k in ("line", "prompt", "label", "routed", "complexity")}
            for r in rows
            if r["under"] or r["over"]
        ],
    }


def cmd_calibrate(args: argparse.Namespace, ctx: CliContext) -> int:
    router = _router(ctx)
    cases = [Labelled(prompt, tier.name) for _, prompt, tier in read_labelled(args.file, router.catalog)]
    result = calibrate(router, cases, max_under=args.max_under)
    snippet = {"routing": {"sonnetThreshold": result.sonnet_threshold, "opusThreshold": result.opus_threshold}}
    if args.json:
        emit_json({**asdict(result), "settings": snippet})
        return 0
    cfg = router.config
    print(f"{result.prompts} prompts from {args.file}; {result.scored} scored by the tier model inform the fit")
    print(f"{'':28}{'accuracy':>10}{'under':>8}{'over':>8}")
    rows = (
        (f"now ({cfg.sonnet_threshold:g} / {cfg.opus_threshold:g})", result.before),
        (f"fitted ({result.sonnet_threshold:g} / {result.opus_threshold:g})", result.fitted),
        (f"cross-validated ({result.folds} folds)", result.cross_validated),
    )
    for label, (acc, under, over) in rows:
        print(f"{label:<28}{acc:>10.1%}{under:>8.1%}{over:>8.1%}")
    print("expect the cross-validated figures on new prompts; to use the fit, put this in your settings:")
    print(json.dumps(snippet))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace, ctx: CliContext) -> int:
    report = evaluate_file(_router(ctx), args.file)
    if args.json:
        if not args.show_misses:
            report.pop("misses")
        emit_json(report)
        return 0
    print(f"{report['prompts']} prompts from {report['file']}")
    print(f"accuracy       {report['accuracy']:.1%}")
    print(f"under-routing  {report['under_routing']:.1%}  (sent to a cheaper tier than labelled)")
    print(f"over-routing   {report['over_routing']:.1%}  (sent to a dearer tier than labelled)")
    print(
        f"cost           ${report['estimated_cost']:.4f} vs ${report['always_top_tier_cost']:.4f} always "
        f"{report['top_tier']} ({report['cost_vs_top_tier']:.1%}; each prompt alone, no prompt cache)"
    )
    # "; " between counts: a scorer's own name may hold a comma ("tier model, sure without the embedding")
    print("scored by      " + "; ".join(f"{k} {v}" for k, v in report["scored_by"].items() if v))
    tiers = [t.name for t in _router(ctx).catalog.routable]
    print("label \\ routed  " + "".join(f"{t:>8}" for t in tiers))
    for label in tiers:
        row = report["confusion"].get(label, {})
        print(f"{label:<15} " + "".join(f"{row.get(t, 0):>8}" for t in tiers))
    if args.show_misses:
        for miss in report["misses"]:
            print(
                f"  line {miss['line']}: {miss['label']} -> {miss['routed']} ({miss['complexity']:.2f}) "
                f"{miss['prompt'][:90]!r}"
            )
    return 0


# -- ledger and catalog ----------------------------------------------------------------------------------------
def cmd_ledger(args: argparse.Namespace, ctx: CliContext) -> int:
    path = ledger_path(ctx.paths)
    if not path.exists():
        rows: list[dict[str, Any]] = []
    else:
        with Ledger(path) as ledger:
            rows = ledger.totals(args.by, since=time.time() - args.hours * 3600 if args.hours else 0.0)
    if args.json:
        emit_json({"ledger": str(path), "by": args.by, "rows": rows})
        return 0
    if not rows:
        print(f"no requests recorded in {path}")
        return 0
    # searches: web searches (a fee each); fast/us: requests served in fast mode / in the US (dearer tokens)
    print(
        f"{args.by:<40} {'requests':>8} {'input':>10} {'output':>9} {'cache r/w':>15} {'searches':>8} "
        f"{'fast/us':>9} {'cost $':>10} {'saved $':>10}"
    )
    for r in rows:
        cache = f"{r['cache_read']}/{r['cache_write_5m'] + r['cache_write_1h']}"
        served = f"{r['fast_requests']}/{r['us_requests']}"
        print(
            f"{str(r[args.by])[:40]:<40} {r['requests']:>8} {r['input_tokens']:>10} {r['output_tokens']:>9} "
            f"{cache:>15} {r['web_search_requests']:>8} {served:>9} {r['cost']:>10.4f} {r['saved']:>10.4f}"
        )
    print(
        f"{'total':<40} {sum(r['requests'] for r in rows):>8} {'':>10} {'':>9} {'':>15} "
        f"{sum(r['web_search_requests'] for r in rows):>8} {'':>9} "
        f"{sum(r['cost'] for r in rows):>10.4f} {sum(r['saved'] for r in rows):>10.4f}"
    )
    return 0


def cmd_catalog(args: argparse.Namespace, ctx: CliContext) -> int:
    catalog = _router(ctx).catalog
    if args.json:
        emit_json(catalog.to_dict())
        return 0
    print(f"prices as of {catalog.prices_as_of} ({catalog.prices_source}); USD per million tokens")
    if catalog.server_tools:
        print("server tools, USD per 1,000 requests: " + ", ".join(f"{n} {fee:g}" for n, fee in catalog.server_tools))
    for tier in catalog.tiers:
        print(f"tier {tier.name}: sends {tier.model}" + ("" if tier.routable else " (never a routing target)"))
    # fast, us: the factor on every token price of an answer served in fast mode, or in the US ("-": not offered)
    print(
        f"{'model':<28} {'tier':<7} {'input':>6} {'output':>7} {'w5m':>6} {'w1h':>6} {'read':>5} {'context':>9} "
        f"{'fast':>5} {'us':>5}"
    )
    for m in catalog.models:
        fast, us = dict(m.speeds).get("fast"), dict(m.geos).get("us")
        print(
            f"{m.id:<28} {m.tier:<7} {m.input:>6g} {m.output:>7g} {m.cache_write_5m:>6g} {m.cache_write_1h:>6g} "
            f"{m.cache_read:>5g} {m.context:>9} {f'x{fast:g}' if fast else '-':>5} {f'x{us:g}' if us else '-':>5}"
        )
    return 0


# -- proxy ---------------------------------------------------------------------------------------------------
def cmd_proxy(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.observability import RedactingFormatter
    from ultramax.prewarm import announce_proxy, is_loopback_host, withdraw_proxy
    from ultramax.routing.proxy import ProxyServer
    from ultramax.routing.upstream import shown_url

    settings = load_settings(ctx.paths, ctx.project_dir)
    router = Router.from_settings(settings)
    host = args.host or str(settings.get("routing.proxyHost"))
    port = args.port if args.port is not None else int(settings.get("routing.proxyPort"))
    upstream = args.upstream or str(settings.get("routing.upstream"))
    if args.upstream and (why := http_url_problem(args.upstream)):
        raise UsageError(f"--upstream {why}")
    if not is_loopback_host(host):
        print(
            f"ultramax proxy: warning: listening on {host}, not loopback; anyone who can reach it spends your API key",
            file=sys.stderr,
        )
    logger = logging.getLogger("ultramax.proxy")
    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter("%(asctime)s %(message)s"))  # lines name what the client sent
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    async def serve() -> None:
        with Ledger.open(ctx.paths) as ledger:
            days = int(settings.get("routing.ledgerRetentionDays"))
            if days > 0 and (pruned := ledger.prune(time.time() - days * 86400)):
                print(f"ultramax proxy: {pruned} ledger rows older than {days} days deleted", file=sys.stderr)
            restore_router(router, ledger)
            server = ProxyServer(
                router,
                ledger,
                upstream,
                host=host,
                port=port,
                head_timeout=float(settings.get("routing.upstreamTimeoutSeconds")),
                idle_timeout=float(settings.get("routing.upstreamIdleSeconds")),
            )
            await server.start()
            announce_proxy(ctx.paths, server.base_url)  # where the daemon sends prompts to score ahead
            print(f"ultramax proxy on {server.base_url} -> {server.upstream.shown}", file=sys.stderr)
            print(f"use it: ANTHROPIC_BASE_URL={server.base_url} claude", file=sys.stderr, flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            def on_signal(sig: signal.Signals) -> None:
                stopped_by.append(sig)
                stop.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, on_signal, sig)
            try:
                await stop.wait()
            finally:
                withdraw_proxy(ctx.paths, server.base_url)
                await server.close()

    stopped_by: list[signal.Signals] = []
    try:
        asyncio.run(serve())
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {host}:{port}: something already listens there (another `ultramax proxy`?); "
                "stop it, or choose another port with --port or routing.proxyPort (0 picks a free one)"
            ) from exc
        raise ConfigError(f"cannot listen on {host}:{port} ({exc})") from exc
    except (ValueError, OverflowError) as exc:  # an address the socket layer or the upstream client refuses
        raise ConfigError(
            f"cannot run the proxy on {host}:{port} for {shown_url(upstream)} ({exc}); check --host, --port and "
            "--upstream (or routing.proxyHost, routing.proxyPort and routing.upstream)"
        ) from exc
    return 130 if signal.SIGINT in stopped_by else 0  # Ctrl-C ends it as it ends any command; SIGTERM: a stop
