"""Flows are data, checked when loaded: each problem names its node."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from callflows import FlowValidationError, choose_language, load_flows, step
from callflows.loader import BACK_KEY, DATA_DIR, build

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
    raw = broken(settings__options=[], settings__back=None)
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


def test_every_way_back_is_key_5_with_one_label() -> None:
    for flow in load_flows().values():
        label = {"en": "To go back", "es": "Para volver"}[flow.language]
        for menu in flow.nodes.values():
            backs = [o for o in menu.options if o.key == BACK_KEY]
            if menu.back is None:
                # The first menu has no way back; the story menu words its own (back to the topics).
                assert all(o.target in flow.nodes for o in backs), menu.id
                continue
            # The last option, always 5, always the same words, going where the node says.
            assert backs == [menu.options[-1]] and backs[0].label == label and backs[0].target == menu.back
    menus = load_flows()["en"].nodes
    assert {n for n, m in menus.items() if m.back} == {"stories", "settings", "no_peer", "callback_confirm",
                                                       "callback_window", "closed", "limit_reached", "blocked"}


def test_key_5_is_only_ever_the_way_back_and_8_is_no_option() -> None:
    raw = broken()
    raw["nodes"]["main"]["options"][1]["key"] = "8"
    raw["nodes"]["stories"]["options"][0]["key"] = "5"
    raw["nodes"]["callback_message"]["options"].append({"key": "5", "label": "To leave a message",
                                                         "target": "action:voicemail"})
    raw["nodes"]["settings"]["back"] = "nowhere"
    problems = problems_of(raw)
    assert "node 'main': key '8' is reserved for changing language" in problems
    assert "node 'stories': key '5' is its way back (back: main), so no option may use it" in problems
    assert ("node 'callback_message': key '5' is the way back in every menu but the first; it must lead to a menu"
            in problems)
    assert "node 'settings': back leads to unknown node 'nowhere'" in problems
    assert not any(p.startswith("node 'main'") and "'5'" in p for p in problems)  # the first menu: 5 is settings


def test_a_way_back_counts_as_an_option() -> None:
    raw = broken()
    raw["nodes"]["stories"]["options"].append({"key": "6", "label": "For more", "target": "main"})
    assert "node 'stories': 6 options, at most 5 keep a menu easy to hold in mind" in problems_of(raw)


def test_every_menu_says_what_its_default_does() -> None:
    raw = broken()
    del raw["nodes"]["callback_window"]["default_note"]
    assert "node 'callback_window': missing 'default_note'" in problems_of(raw)


def test_a_menu_that_words_the_keys_that_work_everywhere_itself_names_a_phrase_the_flow_has() -> None:
    raw = broken(closed__global_keys="global_keys_nowhere")
    assert "node 'closed': global_keys names no phrase in strings: 'global_keys_nowhere'" in problems_of(raw)
    flows = load_flows()
    for flow in flows.values():  # no person offered where none can be had; every other menu the flow's block
        no_person = {"closed", "limit_reached", "blocked"}
        assert {m.id for m in flow.nodes.values() if m.global_keys != "global_keys"} == no_person
        assert all("0" not in flow.text(flow.nodes[node].global_keys) for node in no_person)


def test_words_said_to_callers_are_required_in_each_language() -> None:
    raw = broken()
    for name in ("key_pound", "part_afternoon", "hold_wait_one", "global_keys_short", "language_offer"):
        del raw["strings"][name]
    assert ("strings: missing global_keys_short, hold_wait_one, key_pound, language_offer, part_afternoon"
            in problems_of(raw))


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
    assert ok.exit_code == 0 and "en: 12 menus OK" in ok.output


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
        ("stories", "5", None, 0, ("node", "main")),
        ("settings", None, "go back", 0, ("node", "main")),
    ],
)
def test_engine_steps(node, digits, speech, attempt, expected) -> None:  # type: ignore[no-untyped-def]
    flow = load_flows()["en"]
    t = step(flow, node, digits=digits, speech=speech, attempt=attempt)
    assert (t.kind, t.target) == expected


def test_a_second_wrong_answer_keeps_every_option_and_only_a_default_is_marked() -> None:
    flow = load_flows()["en"]
    second = step(flow, "main", digits="7", attempt=1)
    assert (second.kind, second.attempt, second.simpler, second.default) == ("invalid", 2, False, False)
    taken = step(flow, "main", digits="7", attempt=2)
    assert (taken.kind, taken.target, taken.default) == ("action", "peer", True)
    assert step(flow, "main", attempt=1).default is True
    assert step(flow, "main", digits="1").default is False


@pytest.mark.parametrize(("digits", "speech", "expected"), [
    ("1", "", "en"), ("2", "", "es"), ("", "English", "en"), ("", "español", "es"), ("", "Espanol", "es"),
    ("", "spanish please", "es"), ("", "no hablo inglés", "es"), ("", "inglés", "en"), ("", "dos", "es"),
    ("", "one", "en"), ("", "", None), ("5", "", None), ("", "banana", None),
])
def test_the_first_question_never_chooses_by_itself(digits: str, speech: str, expected: str | None) -> None:
    assert choose_language(digits, speech) == expected


def test_engine_understands_spanish_speech() -> None:
    flow = load_flows()["es"]
    assert step(flow, "main", speech="Quiero oír una historia").target == "stories"
    assert step(flow, "stories", speech="sobre la metadona").target == "story:medication"
