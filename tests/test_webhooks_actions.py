"""The action registry of ivr/webhooks: one handler for every action of the flow files, and no other.

Handler modules hand a call to each other only through ``ivr.webhooks.actions``; the last
test here holds that they never import each other (nor hide an import in a function).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from callflows import ACTIONS, TOPIC_ACTIONS
from callflows.loader import DATA_DIR, GLOBAL_KEYS
from ivr.webhooks import actions
from tests.helpers import REPO, TestCaller
from tests.test_architecture import collect_imports, module_name

WEBHOOKS = REPO / "ivr" / "webhooks"
# The modules every handler module may share; anything else in ivr/webhooks is a handler module.
SHARED = {"ivr.webhooks.actions", "ivr.webhooks.blueprints", "ivr.webhooks.context", "ivr.webhooks.crisis",
          "ivr.webhooks.failures", "ivr.webhooks.story_audio"}


def flow_file_actions() -> set[str]:
    """Every action a flow file names (options, defaults and the global keys), ``story:<topic>`` as ``story:``."""
    targets = [str(target) for target in GLOBAL_KEYS.values()]
    for path in sorted(Path(DATA_DIR).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for node in raw["nodes"].values():
            targets.append(str(node["default"]))
            targets.extend(str(option["target"]) for option in node["options"])
    names = {t.removeprefix("action:") for t in targets if t.startswith("action:")}
    return {name.partition(":")[0] + ":" if ":" in name else name for name in names}


def test_registry_holds_exactly_the_actions_of_the_flow_files(app) -> None:  # type: ignore[no-untyped-def]
    used = flow_file_actions()
    assert "story:" in used and "peer" in used and "callback_cancel" in used  # the collector reads the files
    assert actions.flow_actions() == used
    # The loader's list (what a flow file may use) is the same set: no action without a use, or a handler.
    assert ACTIONS | {f"{family}:" for family in TOPIC_ACTIONS} == used
    assert actions.unhandled(ACTIONS, TOPIC_ACTIONS) == []


def test_hand_overs_are_registered_and_no_flow_can_name_them(app) -> None:  # type: ignore[no-untyped-def]
    assert actions.unhandled([], []) == []  # every hand-over has its handler
    assert not actions.HAND_OVERS & ACTIONS
    assert not any(actions.is_flow_action(name) for name in actions.HAND_OVERS)
    assert actions.is_flow_action("peer") and actions.is_flow_action("story:anything")
    assert not actions.is_flow_action("nothing") and not actions.is_flow_action("nothing:else")


def test_a_hand_over_is_not_reachable_as_an_action_url(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.post(f"/voice/action/{actions.PEER_ID}?lang=en")
    assert caller.said.startswith("What would you like to do?")  # the main menu, not the peer sign-in


def test_one_handler_per_name_and_unknown_names_fail_loudly(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="already has a handler"):
        actions.action("peer")(lambda ctx: None)
    with pytest.raises(ValueError, match="already have a handler"):
        actions.topic_action("story")(lambda ctx, topic: None)
    with pytest.raises(LookupError, match="no handler for action 'nothing'"):
        actions.perform(None, "nothing")


def test_handler_modules_import_only_the_shared_modules() -> None:
    """No handler module imports another (they hand over through the registry), and no import hides in a function."""
    found = []
    for path in sorted(WEBHOOKS.glob("*.py")):
        name, is_package = module_name(path, REPO)
        for imp in collect_imports(path.read_text(encoding="utf-8"), path.relative_to(REPO).as_posix(), name,
                                   is_package):
            targets = [f"{imp.module}.{n}" for n in imp.names] if imp.module == "ivr.webhooks" else [imp.module]
            webhook_targets = [t for t in targets if t.startswith("ivr.webhooks.")]
            if imp.in_function or imp.in_class or any(t not in SHARED for t in webhook_targets):
                found.append(imp.describe())
    assert found == []
    assert SHARED <= {module_name(path, REPO)[0] for path in WEBHOOKS.glob("*.py")}
