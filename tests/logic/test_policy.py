"""The scoring policy file: loaded, validated, and stamped on every decision."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.scoring import logic
from services.scoring.policy import (
    DEFAULT_POLICY_PATH,
    STRICT_POLICY_PATH,
    PolicyError,
    load_policy,
    parse_policy,
)
from tests.logic.test_scoring import FRESH, make_event, refund_failed_trace

pytestmark = pytest.mark.logic

DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text()


def edited(**changes: object) -> str:
    """The default policy with dotted keys set (or, with value ``...``, removed)."""
    data = yaml.safe_load(DEFAULT_TEXT)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(data)


def test_the_default_policy_loads_with_its_version() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.version == "2026.12-a"
    assert policy.thresholds.hold < policy.thresholds.promote
    assert policy.budgets.per_pattern >= 1
    assert policy.transient_errors


def test_the_strict_policy_has_a_higher_bar_and_a_smaller_budget() -> None:
    default, strict = load_policy(DEFAULT_POLICY_PATH), load_policy(STRICT_POLICY_PATH)
    assert strict.version == "2026.11-strict"
    assert strict.thresholds.promote > default.thresholds.promote
    assert strict.budgets.per_pattern < default.budgets.per_pattern


def test_the_policy_files_are_found_next_to_the_module_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_POLICY_PATH.is_absolute()
    assert DEFAULT_POLICY_PATH.parent.parent.name == "scoring"
    assert load_policy(DEFAULT_POLICY_PATH).version == "2026.12-a"


def test_the_policy_version_is_stamped_into_every_reason() -> None:
    event = make_event(refund_failed_trace())
    for path in (DEFAULT_POLICY_PATH, STRICT_POLICY_PATH):
        policy = load_policy(path)
        assert f"under policy {policy.version}" in logic.score(event, policy, FRESH).reason


def test_a_policy_is_frozen() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    with pytest.raises(ValueError, match="frozen"):
        policy.version = "changed"  # type: ignore[misc]


def test_an_unknown_top_level_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(edited(max_step=10))
    with pytest.raises(PolicyError, match=r"team\.yaml.*unknown key 'max_step'"):
        load_policy(path)


def test_an_unknown_nested_key_is_named_by_its_full_path() -> None:
    with pytest.raises(PolicyError, match=r"unknown key 'weights\.risky'"):
        parse_policy(edited(weights__risky=1.0), source="team.yaml")


def test_an_unknown_gate_key_is_named() -> None:
    with pytest.raises(PolicyError, match=r"unknown key 'gates\.observable\.min'"):
        parse_policy(edited(gates__observable={"reject_below": 0.5, "min": 0.6}))


def test_a_missing_key_is_named() -> None:
    with pytest.raises(PolicyError, match=r"missing key 'thresholds\.hold'"):
        parse_policy(edited(thresholds__hold=...))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"weights__risk_bearing": -1.0}, "weights.risk_bearing"),
        ({"thresholds__promote": 1.5}, "thresholds.promote"),
        ({"thresholds__hold": 0.7}, "thresholds"),
        ({"budgets__per_pattern": 0}, "budgets.per_pattern"),
        ({"budgets__daily": 0}, "budgets.daily"),
        ({"windows__min_occurrences": 0}, "windows.min_occurrences"),
        ({"costly__latency_multiplier": 0.5}, "costly.latency_multiplier"),
        (
            {"baselines__default": {"latency_ms": 0, "cost_usd": 0.01}},
            "baselines.default.latency_ms",
        ),
        ({"gates__teachable": {"reject_below": 0.5, "hold_below": 0.2}}, "gates.teachable"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_a_value_out_of_range_is_an_error_naming_the_key(
    change: dict[str, object], where: str
) -> None:
    with pytest.raises(PolicyError, match=rf"'{where}':"):
        parse_policy(edited(**change), source="team.yaml")


def test_a_hold_threshold_not_below_promote_says_so() -> None:
    with pytest.raises(PolicyError, match=r"hold \(0\.7\) must be below promote \(0\.55\)"):
        parse_policy(edited(thresholds__hold=0.7))


def test_all_weights_zero_is_an_error() -> None:
    zero = dict.fromkeys(logic.CRITERIA, 0.0)
    with pytest.raises(PolicyError, match="at least one weight must be positive"):
        parse_policy(edited(weights=zero))


def test_a_bad_transient_error_regex_is_an_error_naming_it() -> None:
    text = edited(transient_errors=["timeout", "rate[ limit"])
    bad = r"'transient_errors'.*item 1 'rate\[ limit' is not a valid regex"
    with pytest.raises(PolicyError, match=bad):
        parse_policy(text, source="team.yaml")


def test_transient_error_regexes_are_compiled_case_insensitively() -> None:
    policy = parse_policy(edited(transient_errors=["service unavailable"]))
    assert policy.transient_errors[0].search("SERVICE UNAVAILABLE")


def test_fixed_baselines_are_optional_and_only_for_the_agents_named() -> None:
    policy = parse_policy(edited(baselines={"support-agent": {"latency_ms": 1, "cost_usd": 1}}))
    assert policy.baseline_for("support-agent") is not None
    assert policy.baseline_for("another-agent") is None


def test_learned_baseline_lines_must_be_ordered() -> None:
    with pytest.raises(PolicyError, match="z_full"):
        parse_policy(edited(costly__z_full=1.0))


def test_text_that_is_not_a_yaml_mapping_is_refused_clearly() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("version: [unclosed", source="team.yaml")
    with pytest.raises(PolicyError, match="top level must be a mapping"):
        parse_policy("- just\n- a list\n")


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"cannot read policy .*absent\.yaml"):
        load_policy(tmp_path / "absent.yaml")


def test_a_version_with_spaces_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"'version':"):
        parse_policy(edited(version="my policy"))
