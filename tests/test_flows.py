"""Flows are data, checked when loaded: each problem names its node."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from callflows import FlowValidationError, load_flows, step
from callflows.loader import DATA_DIR, build

EN = yaml.safe_load((DATA_DIR / "en.yaml").read_text(encoding="utf-8"))


def broken(**changes) -> dict:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load((DATA_DIR / "en.yaml").read_text(encoding="utf-8"))
    for path, value in changes.items():
        node, _, field = path.partition("__")
        if field:
            raw["nodes"][node][field] = value
        else:
            raw["nodes"][node] = value
    return raw


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        build(raw, "test.yaml")
    return info.value.problems


def test_shipped_flows_load_in_both_languages() -> None:
    flows = load_flows()
    assert set(flows) == {"en", "es"}
    for flow in flows.values():
        for menu in flow.nodes.values():
            assert 1 <= len(menu.options) <= 5


def test_unknown_target_names_node_and_target() -> None:
    raw = broken()
    raw["nodes"]["stories"]["options"][0]["target"] = "nowhere"
    assert "node 'stories': option '1' leads to unknown target 'nowhere'" in problems_of(raw)


def test_unknown_action_is_rejected() -> None:
    raw = broken()
    raw["nodes"]["main"]["options"][0]["target"] = "action:teleport"
    assert "node 'main': option '1' leads to unknown target 'action:teleport'" in problems_of(raw)


def test_unreachable_node_is_named() -> None:
    raw = broken(orphan={"prompt": "x", "simple": "x", "default": "main",
                         "options": [{"key": "1", "label": "Back", "target": "main"}]})
    assert "node 'orphan': unreachable from 'main'" in problems_of(raw)


def test_dead_end_is_named() -> None:
    raw = broken(settings__options=[])
    assert "node 'settings': dead end, it has no options" in problems_of(raw)


def test_duplicate_key_is_named() -> None:
    raw = broken()
    raw["nodes"]["main"]["options"][1]["key"] = "1"
    assert "node 'main': duplicate key '1'" in problems_of(raw)


def test_more_than_five_options_is_rejected() -> None:
    raw = broken()
    extra = {"key": "6", "label": "To do more", "target": "main"}
    raw["nodes"]["main"]["options"].append(extra)
    assert any(p.startswith("node 'main': 6 options") for p in problems_of(raw))


def test_reserved_keys_cannot_be_options() -> None:
    raw = broken()
    raw["nodes"]["main"]["options"][0]["key"] = "9"
    assert "node 'main': key '9' is reserved in every menu" in problems_of(raw)


def test_the_story_pause_key_is_no_option_after_a_story() -> None:
    raw = broken()
    raw["nodes"]["story_after"]["options"][1]["key"] = "2"  # one key map: 2 pauses and goes on, in every state
    assert "node 'story_after': key '2' pauses and resumes a story, so it is no option here" in problems_of(raw)


def test_words_said_to_callers_are_required_in_each_language() -> None:
    raw = broken()
    for name in ("key_pound", "part_afternoon", "hold_wait_one"):
        del raw["strings"][name]
    assert "strings: missing hold_wait_one, key_pound, part_afternoon" in problems_of(raw)


@pytest.mark.parametrize(("language", "minutes", "said"), [
    ("en", 1, "The expected wait is about 1 minute."),
    ("en", 3, "The expected wait is about 3 minutes."),
    ("es", 1, "La espera es de más o menos un minuto."),
    ("es", 3, "La espera es de unos 3 minutos."),
])
def test_one_is_said_in_the_singular(language: str, minutes: int, said: str) -> None:
    assert load_flows()[language].counted("hold_wait", minutes, minutes=minutes) == said


def test_languages_must_have_the_same_keys(tmp_path: Path) -> None:
    (tmp_path / "en.yaml").write_text((DATA_DIR / "en.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    es = yaml.safe_load((DATA_DIR / "es.yaml").read_text(encoding="utf-8"))
    es["nodes"]["settings"]["options"].pop()
    (tmp_path / "es.yaml").write_text(yaml.safe_dump(es, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowValidationError) as info:
        load_flows(tmp_path)
    assert info.value.problems == ["node 'settings': keys differ between 'en' and 'es'"]


def test_check_flows_command_reports_problems(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = broken()
    raw["nodes"]["main"]["options"][0]["target"] = "nowhere"
    (tmp_path / "en.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = runner.invoke(args=["check-flows", str(tmp_path)])
    assert result.exit_code == 1
    assert "node 'main': option '1' leads to unknown target 'nowhere'" in result.output
    ok = runner.invoke(args=["check-flows"])
    assert ok.exit_code == 0 and "en: 9 menus OK" in ok.output


@pytest.mark.parametrize(
    ("node", "digits", "speech", "attempt", "expected"),
    [
        ("main", "1", None, 0, ("action", "peer")),
        ("main", "2", None, 0, ("node", "stories")),
        ("main", None, "leave a message please", 0, ("action", "voicemail")),
        ("main", None, "two", 0, ("node", "stories")),
        ("main", "*", None, 0, ("repeat", "main")),
        ("stories", "0", None, 0, ("action", "person")),
        ("stories", "9", None, 0, ("action", "crisis")),
        ("main", None, None, 0, ("no_input", "main")),
        ("main", None, None, 1, ("action", "peer")),
        ("stories", None, None, 1, ("node", "main")),
        ("main", "7", None, 0, ("invalid", "main")),
        ("main", "7", None, 2, ("action", "peer")),
        ("main", None, "banana", 0, ("invalid", "main")),
    ],
)
def test_engine_steps(node, digits, speech, attempt, expected) -> None:  # type: ignore[no-untyped-def]
    flow = load_flows()["en"]
    t = step(flow, node, digits=digits, speech=speech, attempt=attempt)
    assert (t.kind, t.target) == expected


def test_engine_understands_spanish_speech() -> None:
    flow = load_flows()["es"]
    assert step(flow, "main", speech="Quiero oír una historia").target == "stories"
    assert step(flow, "stories", speech="sobre la metadona").target == "story:medication"
