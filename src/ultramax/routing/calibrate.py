"""Fit the router's two thresholds to someone's own labelled prompts.

Where people draw the line between "haiku is enough" and "this needs sonnet" (or opus) differs more between
labellers than anything the tier model does (docs/benchmarks.md: held out file by file, the training files
range from 58% to 98% accuracy). The tier model's score is a complexity on which ``routing.sonnetThreshold``
and ``routing.opusThreshold`` are the cut points, so a team can move them to its own lines: given prompts
labelled with the cheapest adequate tier, this picks the pair with the best accuracy whose under-routing
(sent cheaper than the label) stays within a limit, and estimates by k-fold cross-validation how that choice
does on prompts it was not fitted to -- the figure to believe, since the fitted one flatters.

Only prompts the tier model scores (software work) inform the fit; general chat is routed by the seed's
patterns, where the thresholds mean something else. The reported figures come from the real router with the
chosen thresholds, on every prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ultramax.errors import ConfigError
from ultramax.routing.router import Decision, Router

__all__ = ["Calibration", "Labelled", "calibrate", "rates"]

GRID = tuple(round(0.02 * i, 2) for i in range(1, 50))
"""Candidate thresholds: 0.02 ... 0.98."""
MIN_SCORED = 2
"""Fewer scored prompts cannot be cross-validated at all (a fold needs the others to fit on)."""
FEW_SCORED = 20
"""Below this many scored prompts the fit follows single prompts: it runs, with a warning."""


@dataclass(frozen=True, slots=True)
class Labelled:
    prompt: str
    tier: str
    """The cheapest adequate tier's name."""


@dataclass(frozen=True, slots=True)
class Calibration:
    sonnet_threshold: float
    opus_threshold: float
    before: tuple[float, float, float]
    """Accuracy, under-routing and over-routing with the thresholds in effect."""
    fitted: tuple[float, float, float]
    """The same with the chosen thresholds, on the prompts they were chosen on (optimistic)."""
    cross_validated: tuple[float, float, float]
    """The same, each fold routed with thresholds chosen on the other folds: what to expect on new prompts."""
    scored: int
    """How many prompts the tier model scored (the ones the fit used)."""
    prompts: int
    folds: int = 0
    """How many folds the cross-validation had (fewer than asked for when there are fewer scored prompts)."""
    warnings: tuple[str, ...] = ()
    """Why the figures deserve less trust: too few scored prompts, or all labelled one tier."""


def rates(routed: Sequence[int], labels: Sequence[int]) -> tuple[float, float, float]:
    """Accuracy, under-routing, over-routing for tier ranks."""
    n = max(len(labels), 1)
    under = sum(r < y for r, y in zip(routed, labels, strict=True))
    over = sum(r > y for r, y in zip(routed, labels, strict=True))
    return (n - under - over) / n, under / n, over / n


def _rank(c: float, sonnet: float, opus: float, ranks: tuple[int, int, int]) -> int:
    # the router's rule for a prompt the tier model scored: above opus -> top, above sonnet -> middle
    return ranks[2] if c > opus else ranks[1] if c > sonnet else ranks[0]


def _fit(
    points: Sequence[tuple[float, int]], ranks: tuple[int, int, int], max_under: float, prefer: tuple[float, float]
) -> tuple[float, float]:
    """The (sonnet, opus) pair with the best accuracy at under-routing <= ``max_under`` (else the least under);
    ties go to the pair nearest ``prefer`` (the thresholds in effect), so nothing moves without a gain."""
    best: tuple[tuple[bool, float, float], float, float] | None = None
    labels = [y for _, y in points]
    for s in GRID:
        for o in GRID:
            if o <= s:
                continue
            acc, under, _ = rates([_rank(c, s, o, ranks) for c, _ in points], labels)
            key = (under <= max_under, acc if under <= max_under else -under, -abs(s - prefer[0]) - abs(o - prefer[1]))
            if best is None or key > best[0]:
                best = (key, s, o)
    assert best is not None
    return best[1], best[2]


def calibrate(router: Router, cases: Sequence[Labelled], *, max_under: float = 0.05, folds: int = 5) -> Calibration:
    """Thresholds fitted to ``cases`` (see the module docstring); ``router`` supplies everything else."""
    if not cases:
        raise ConfigError("no labelled prompts to calibrate on")
    if not 0.0 <= max_under < 1.0:
        raise ConfigError(f"the under-routing limit must be in [0, 1), got {max_under}")
    catalog = router.catalog
    tiers = catalog.routable
    if len(tiers) < 3:
        raise ConfigError("calibration needs three routable tiers (cheap, middle, top)")
    ranks = (tiers[0].rank, tiers[1].rank, tiers[-1].rank)
    labels = [catalog.resolve_tier(c.tier).rank for c in cases]

    def route_all(r: Router) -> list[Decision]:
        return [r.explain_prompt(c.prompt) for c in cases]

    def ranks_of(decisions: Sequence[Decision]) -> list[int]:
        return [catalog.tier(d.tier).rank for d in decisions]

    now = route_all(router)
    points: list[tuple[float, int]] = []
    where: list[int] = []
    for i, decision in enumerate(now):
        analysis = decision.analysis
        if analysis is not None and analysis.learned_tier:
            points.append((analysis.complexity_score, labels[i]))
            where.append(i)
    if not points:
        raise ConfigError("none of the prompts is software work the tier model scores; nothing to calibrate")
    if len(points) < MIN_SCORED:
        raise ConfigError(
            f"the tier model scores only {len(points)} of the prompts (software work); cross-validation needs at "
            f"least {MIN_SCORED} (label {FEW_SCORED} or more for a fit worth using)"
        )
    warnings: list[str] = []
    if len(points) < FEW_SCORED:
        warnings.append(
            f"only {len(points)} prompts inform the fit; with fewer than {FEW_SCORED} the thresholds follow single "
            "prompts, so label more before using them"
        )
    labelled_tiers = {y for _, y in points}
    if len(labelled_tiers) == 1:
        only = next(t.name for t in catalog.tiers if t.rank in labelled_tiers)
        warnings.append(
            f"every scored prompt is labelled {only}: the fit can only push the thresholds to an edge; "
            "include prompts that need the other tiers"
        )
    prefer = (router.config.sonnet_threshold, router.config.opus_threshold)
    sonnet, opus = _fit(points, ranks, max_under, prefer)
    tuned = Router(catalog, replace(router.config, sonnet_threshold=sonnet, opus_threshold=opus))

    # cross-validation: each fold's scored prompts routed with thresholds fitted on the other folds
    k = max(2, min(folds, len(points)))  # at least two points, so every fold has others to fit on
    held: dict[int, int] = {}
    for fold in range(k):
        train = [p for j, p in enumerate(points) if j % k != fold]
        s, o = _fit(train, ranks, max_under, prefer)
        held.update({where[j]: _rank(points[j][0], s, o, ranks) for j in range(fold, len(points), k)})
    routed_tuned = ranks_of(route_all(tuned))
    cv_routed = [held.get(i, routed_tuned[i]) for i in range(len(cases))]
    return Calibration(
        sonnet_threshold=sonnet,
        opus_threshold=opus,
        before=rates(ranks_of(now), labels),
        fitted=rates(routed_tuned, labels),
        cross_validated=rates(cv_routed, labels),
        scored=len(points),
        prompts=len(cases),
        folds=k,
        warnings=tuple(warnings),
    )
