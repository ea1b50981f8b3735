"""Operational cost: effort (retries, loops, corrections, people pulled in), latency,
tokens, cost and tool calls against the agent's own learned baseline (or a baseline the
policy fixes), a weak trajectory against the successful runs of the same request, and a
rising rescue load."""

from __future__ import annotations

import math
from typing import Any

from services.scoring.numbers import noisy_or, plural, ramp, result, rounded
from services.scoring.policy import Baseline, Policy
from shared.events import (
    AgentBaseline,
    CriterionScore,
    PatternTrend,
    TraceFeatures,
    TrajectoryReport,
)

# Operational cost of a pattern whose rescue load per occurrence is rising.
RESCUE_RISING = 0.8

_MEASURE_WORDS = {
    "latency_ms": "latency",
    "total_tokens": "tokens",
    "cost_usd": "cost",
    "tool_calls": "tool calls",
}


TRAJECTORY_PARTS = ("wasted_steps", "blind_retries", "late_correction")


def _trajectory_parts(path: TrajectoryReport) -> dict[str, float]:
    """Weak-trajectory evidence: steps beyond the successful runs' median (full at three
    times as many), failed calls retried unchanged, the working tool found late."""
    wasted = path.extra_steps / path.median_successful_steps if path.median_successful_steps else 0
    return {
        "wasted_steps": ramp(wasted, 0.5, 2.0),
        "blind_retries": ramp(path.blind_retries, 0, 2),
        "late_correction": 0.5 if path.late_correction_step is not None else 0.0,
    }


def _measure_values(features: TraceFeatures) -> dict[str, float]:
    return {
        "latency_ms": features.latency_ms,
        "total_tokens": float(features.total_tokens),
        "cost_usd": features.cost_usd,
        "tool_calls": float(len(features.tool_calls)),
    }


def _against_learned(
    features: TraceFeatures, baseline: AgentBaseline | None, policy: Policy
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    """How far each measure sits above the agent's own usual, in standard deviations of
    its log: a 33-step run is normal for an agent whose runs take 30 steps."""
    c = policy.costly
    parts: dict[str, float] = {}
    notes: list[str] = []
    evidence: dict[str, Any] = {}
    learned = baseline.measures if baseline is not None else {}
    for name, value in _measure_values(features).items():
        known = learned.get(name)
        if value <= 0 or known is None or known.traces < c.min_baseline_traces:
            continue
        z = (math.log(value) - known.log_mean) / known.log_sd
        ratio = value / math.exp(known.log_mean)
        parts[name] = ramp(z, c.z_start, c.z_full)
        evidence[name] = {
            "value": rounded(value),
            "ratio": rounded(ratio),
            "z": rounded(z),
            "traces": known.traces,
        }
        if parts[name] > 0:
            notes.append(
                f"{_MEASURE_WORDS[name]} {ratio:.1f}x this agent's usual ({z:.1f} sd above"
                f" its mean over {known.traces} traces)"
            )
    if not evidence:
        seen = max((m.traces for m in learned.values()), default=0)
        evidence["no_baseline"] = (
            f"{plural(seen, 'trace')} of this agent seen, {c.min_baseline_traces} needed"
        )
    return parts, notes, evidence


def _against_fixed(
    features: TraceFeatures, base: Baseline, policy: Policy
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    c = policy.costly
    latency_ratio = features.latency_ms / base.latency_ms
    cost_ratio = features.cost_usd / base.cost_usd
    parts = {
        "latency_ms": ramp(latency_ratio, 1.0, c.latency_multiplier),
        "cost_usd": ramp(cost_ratio, 1.0, c.cost_multiplier),
    }
    notes = []
    if parts["latency_ms"] > 0:
        notes.append(f"latency {latency_ratio:.1f}x the policy's baseline ({base.latency_ms:g} ms)")
    if parts["cost_usd"] > 0:
        notes.append(f"cost {cost_ratio:.1f}x the policy's baseline (${base.cost_usd:g})")
    evidence = {
        "policy_baseline": {"latency_ms": base.latency_ms, "cost_usd": base.cost_usd},
        "latency_ratio": rounded(latency_ratio),
        "cost_ratio": rounded(cost_ratio),
    }
    return parts, notes, evidence


def over_baseline(
    features: TraceFeatures,
    agent_name: str | None,
    baseline: AgentBaseline | None,
    policy: Policy,
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    """A baseline the policy names for this very agent wins; then the learned one; then
    the policy's ``default`` entry, if it has one."""
    if agent_name and agent_name in policy.baselines:
        return _against_fixed(features, policy.baselines[agent_name], policy)
    parts, notes, evidence = _against_learned(features, baseline, policy)
    fixed = policy.baseline_for(None)
    if "no_baseline" in evidence and fixed is not None:
        return _against_fixed(features, fixed, policy)
    return parts, notes, evidence


def operationally_costly(
    features: TraceFeatures,
    agent_name: str | None,
    policy: Policy,
    baseline: AgentBaseline | None = None,
    trend: PatternTrend | None = None,
    path: TrajectoryReport | None = None,
) -> CriterionScore:
    c = policy.costly
    effort = {
        "retries": ramp(features.retries, 0, c.retries_full),
        "loops": ramp(features.loops, 0, c.loops_full),
        "human_interventions": ramp(features.human_interventions, 0, c.human_full),
        "user_corrections": ramp(features.user_corrections, 0, c.corrections_full),
        "tool_corrections": ramp(features.tool_corrections, 0, c.loops_full),
    }
    measured, measured_notes, measured_evidence = over_baseline(
        features, agent_name, baseline, policy
    )
    notes = []
    if features.retries:
        notes.append(plural(features.retries, "retry", "retries"))
    if features.loops:
        notes.append(plural(features.loops, "repeated tool call"))
    if features.human_interventions:
        notes.append(plural(features.human_interventions, "human intervention"))
    if features.user_corrections:
        notes.append(f"the user corrected the agent {features.user_corrections}x")
    if features.tool_corrections:
        notes.append(
            plural(features.tool_corrections, "failed call", "failed calls")
            + " followed by another tool"
        )
    notes += measured_notes
    parts = {**effort, **measured}
    if path is not None:
        parts.update(_trajectory_parts(path))
        if any(parts[k] > 0 for k in TRAJECTORY_PARTS if k in parts):
            notes.append(f"against the successful runs of this request: {path.summary}")
    if trend is not None and trend.rescue_rising:
        parts["rescue_load_rising"] = RESCUE_RISING
        notes.append(
            f"the pattern's rescue load (retries, people pulled in) per occurrence is"
            f" {trend.rescue_ratio:.1f}x its baseline (p={trend.rescue_p_value:.3g})"
        )
    return result(
        noisy_or(parts.values()),
        ", ".join(notes) if notes else "within the agent's usual cost and effort",
        parts={k: rounded(v) for k, v in parts.items()},
        retries=features.retries,
        loops=features.loops,
        human_interventions=features.human_interventions,
        user_corrections=features.user_corrections,
        tool_corrections=features.tool_corrections,
        latency_ms=features.latency_ms,
        cost_usd=features.cost_usd,
        total_tokens=features.total_tokens,
        baseline=measured_evidence,
    )
