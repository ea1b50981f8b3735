"""The scoring policy: a versioned YAML file that platform teams own and tune.

Everything a reviewer might want to change without a code release lives here; the
shape is closed (unknown keys are errors) so a typo never silently falls back to a
default. Regexes are compiled at load, so a bad pattern stops the stage at start-up
rather than on the first trace that happens to carry an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "default.yaml"
STRICT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "strict.yaml"

UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the key."""


class _Closed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weights(_Closed):
    patterned: float = Field(ge=0.0)
    risk_bearing: float = Field(ge=0.0)
    operationally_costly: float = Field(ge=0.0)
    missed_offline: float = Field(ge=0.0)
    observable: float = Field(ge=0.0)
    teachable: float = Field(ge=0.0)
    enduring: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _some_weight(self) -> Weights:
        if sum(self.as_dict().values()) <= 0.0:
            raise ValueError("at least one weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        return dict(self)


class Thresholds(_Closed):
    promote: UnitFloat
    hold: UnitFloat

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.hold >= self.promote:
            raise ValueError(f"hold ({self.hold}) must be below promote ({self.promote})")
        return self


class Gate(_Closed):
    """Below ``reject_below`` the trace is rejected whatever its total; between the two
    lines it can at most be held, because a reviewer may still be able to use it."""

    reject_below: UnitFloat
    hold_below: UnitFloat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Gate:
        if self.hold_below is not None and self.hold_below < self.reject_below:
            raise ValueError(
                f"hold_below ({self.hold_below}) must not be below reject_below "
                f"({self.reject_below})"
            )
        return self

    @property
    def review_line(self) -> float:
        return self.reject_below if self.hold_below is None else self.hold_below


class Gates(_Closed):
    redaction_must_pass: bool = True
    # A run its evaluator or user called a success is at most held (whether a success
    # teaches enough to take suite space is a person's call) unless it carries one of
    # these risk signals: a run that "succeeded" while pushing on a boundary (denied
    # approvals, a guardrail, a policy flag) is boundary stress worth a fixture.
    success_at_most_hold: bool = True
    success_promotable_with: tuple[str, ...] = (
        "approval_denied_repeatedly",
        "guardrail_hit",
        "policy_flagged",
    )
    patterned: Gate | None = None
    risk_bearing: Gate | None = None
    operationally_costly: Gate | None = None
    missed_offline: Gate | None = None
    observable: Gate | None = None
    teachable: Gate | None = None
    enduring: Gate | None = None

    def by_criterion(self) -> dict[str, Gate]:
        return {name: gate for name, gate in self if isinstance(gate, Gate)}


class Windows(_Closed):
    min_occurrences: int = Field(ge=1)
    # Distinct sessions (or users, whichever is larger) below this make a "run", not a pattern.
    min_sessions: int = Field(ge=1)
    full_count_7d: int = Field(ge=2)
    full_spread: int = Field(ge=2)
    full_days: int = Field(ge=2)
    full_versions: int = Field(ge=2)


class Budgets(_Closed):
    per_pattern: int = Field(ge=1)
    daily: int | None = Field(default=None, ge=1)

    @property
    def counts_days(self) -> bool:
        return self.daily is not None


class Costly(_Closed):
    # A ratio to a baseline set in this policy at which latency or cost counts as fully
    # costly (only for agents the policy names under ``baselines``).
    latency_multiplier: float = Field(gt=1.0)
    cost_multiplier: float = Field(gt=1.0)
    retries_full: int = Field(ge=1)
    loops_full: int = Field(ge=1)
    human_full: int = Field(ge=1)
    # Against the baseline learned from the agent's own traffic: a measure starts to count
    # at ``z_start`` standard deviations (log scale) above the agent's mean and counts
    # fully at ``z_full``; below ``min_baseline_traces`` traces there is no baseline yet.
    min_baseline_traces: int = Field(default=30, ge=2)
    z_start: float = Field(default=2.0, gt=0.0)
    z_full: float = Field(default=3.5, gt=0.0)
    corrections_full: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _z_ordered(self) -> Costly:
        if self.z_full <= self.z_start:
            raise ValueError(f"z_full ({self.z_full}) must be above z_start ({self.z_start})")
        return self


class Baseline(_Closed):
    latency_ms: float = Field(gt=0.0)
    cost_usd: float = Field(gt=0.0)


class Policy(_Closed):
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    weights: Weights
    thresholds: Thresholds
    gates: Gates
    windows: Windows
    budgets: Budgets
    costly: Costly
    # Optional fixed baselines for named agents; every other agent is judged against the
    # baseline learned from its own traffic.
    baselines: dict[str, Baseline] = Field(default_factory=dict)
    max_steps: int = Field(ge=1)
    # Matched case-insensitively against error types and (templated) error messages.
    transient_errors: tuple[re.Pattern[str], ...] = ()

    @field_validator("transient_errors", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        compiled: list[Any] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"item {i} must be a string, got {type(item).__name__}")
            try:
                compiled.append(re.compile(item, re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"item {i} {item!r} is not a valid regex: {exc}") from exc
        return tuple(compiled)

    def baseline_for(self, agent_name: str | None) -> Baseline | None:
        if agent_name and agent_name in self.baselines:
            return self.baselines[agent_name]
        return self.baselines.get("default")


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _explain(exc: ValidationError, source: str) -> PolicyError:
    problems = []
    for err in exc.errors():
        where = _where(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'")
        elif err["type"] == "missing":
            problems.append(f"missing key '{where}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = repr(err["input"])
            got = got if len(got) <= 80 else got[:77] + "..."
            problems.append(f"'{where}': {msg} (got {got})")
    return PolicyError(f"invalid policy {source}: " + "; ".join(problems))


def parse_policy(text: str, source: str = "<string>") -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid policy {source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(
            f"invalid policy {source}: the top level must be a mapping, got {type(data).__name__}"
        )
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source) from exc


def load_policy(path: Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror or exc}") from exc
    return parse_policy(text, source=str(path))
