"""Skill resolution: accuracy on labelled prompts, and what it costs per prompt.

    .venv/bin/python -m bench.skills_eval [--file tests/skills/data/skills_eval.jsonl] [--repeat 200]

1. Accuracy: ``ultramax skills eval`` on ``--file`` (by default the dev set written with the resolver, so the
   figure shows the resolver implements its documented rules, not how it generalises).
2. Resolver time per prompt, warm (triggers compiled, SKILL.md texts cached): ``resolve`` plus rendering the
   context, over every prompt of the file ``--repeat`` times; and once for a 20,000-character prompt (a
   pasted log).
3. Cold start: loading and validating the graph and compiling the resolver.
4. The stage in the real pipeline: ``Runtime.handle`` on a UserPromptSubmit, the development pipeline with the
   skills stage against the same pipeline without it, interleaved; the difference is what skills add to a hook.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import REPO, isolated_env, machine, summary
from ultramax.decisions import CONTEXT_CAP
from ultramax.skills.evaluate import evaluate, load_cases
from ultramax.skills.graph import load_graph
from ultramax.skills.resolver import SkillResolver

DEV_SET = REPO / "tests" / "skills" / "data" / "skills_eval.jsonl"

LOG_LINE = "2026-11-24T00:29:13Z worker-3 INFO request handled path=/api/v1/orders status=200 ms=12\n"
LONG_PROMPT = LOG_LINE * (20_000 // len(LOG_LINE)) + "Why are the tests failing after the deploy?"


def time_resolver(resolver: SkillResolver, prompts: list[str], repeat: int) -> list[float]:
    """Microseconds per resolve+render, every prompt ``repeat`` times (after one warm-up pass)."""
    for prompt in prompts:
        resolver.resolve(prompt, max_chars=CONTEXT_CAP).context()
    out: list[float] = []
    for _ in range(repeat):
        for prompt in prompts:
            t0 = time.perf_counter_ns()
            resolver.resolve(prompt, max_chars=CONTEXT_CAP).context()
            out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def time_stage(prompts: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds per Runtime.handle(UserPromptSubmit): (with the skills stage, without), interleaved."""
    from ultramax.modes import get_mode
    from ultramax.paths import Paths
    from ultramax.runtime import Runtime

    with isolated_env():
        paths = Paths.from_env()
        runtime = Runtime(paths, configure_logs=False)
        stages = list(get_mode("development").hook_stages)
        without = [s for s in stages if s != "skills"]
        projects = {}
        for name, names in (("with", stages), ("without", without)):
            project = Path(paths.claude_dir).parent / "projects" / name
            (project / ".claude").mkdir(parents=True)
            settings = {"ultramax": {"hookStages": names, "skillsOncePerSession": False}}
            (project / ".claude" / "settings.json").write_text(json.dumps(settings))
            projects[name] = project
        results: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(runs + 20):
            prompt = prompts[i % len(prompts)]
            for name, project in projects.items():
                payload = {
                    "session_id": f"bench-{i % 40}",
                    "transcript_path": "/tmp/t.jsonl",
                    "cwd": str(project),
                    "hook_event_name": "UserPromptSubmit",
                    "prompt": prompt,
                }
                raw = json.dumps(payload).encode()
                t0 = time.perf_counter_ns()
                runtime.handle("UserPromptSubmit", raw, project_hint=str(project))
                if i >= 20:
                    results[name].append((time.perf_counter_ns() - t0) / 1e6)
        return results["with"], results["without"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEV_SET, help="labelled prompts (JSONL)")
    parser.add_argument("--repeat", type=int, default=200, help="timing passes over the prompts")
    parser.add_argument("--stage-runs", type=int, default=500, help="Runtime.handle calls per variant")
    args = parser.parse_args(argv)

    t0 = time.perf_counter_ns()
    graph = load_graph(None)
    resolver = SkillResolver(graph)
    cold_ms = (time.perf_counter_ns() - t0) / 1e6
    cases = load_cases(args.file)
    report = evaluate(resolver, cases)
    data = report.to_dict()
    prompts = [c.prompt for c in cases]
    warm = time_resolver(resolver, prompts, args.repeat)
    long_us = time_resolver(resolver, [LONG_PROMPT], 50)
    with_stage, without_stage = time_stage(prompts, args.stage_runs)

    print(f"machine: {machine()}")
    print(f"file: {args.file.relative_to(REPO) if args.file.is_relative_to(REPO) else args.file}\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| prompts | {data['prompts']} |")
    print(f"| resolved set exactly right | {data['exact']}/{data['prompts']} ({data['exact_set_accuracy']:.1%}) |")
    print(f"| order violations (of {data['order_constraints']} constraints) | {data['order_violations']} |")
    print(f"| dependency-order violations | {data['dependency_violations']} |")
    print(f"| precision / recall | {data['precision']:.3f} / {data['recall']:.3f} |")
    p50, p95, mean = summary(warm)
    print(f"| resolve + render, warm, per prompt (µs) p50 / p95 / mean | {p50:.0f} / {p95:.0f} / {mean:.0f} |")
    lp50, lp95, _ = summary(long_us)
    print(f"| same, {len(LONG_PROMPT):,}-character prompt (µs) p50 / p95 | {lp50:.0f} / {lp95:.0f} |")
    print(f"| cold: load + validate graph, compile triggers (ms) | {cold_ms:.1f} |")
    w50, w95, _ = summary(with_stage)
    n50, n95, _ = summary(without_stage)
    print(f"| Runtime.handle UserPromptSubmit with skills (ms) p50 / p95 | {w50:.3f} / {w95:.3f} |")
    print(f"| Runtime.handle UserPromptSubmit without skills (ms) p50 / p95 | {n50:.3f} / {n95:.3f} |")
    print(f"| added by the skills stage, p50 (ms) | {w50 - n50:.3f} |")
    if report.exact != report.total:
        print("\n" + report.text())
    print("\ngoals: exact set >= 95% with zero order violations; resolution < 1 ms per prompt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
