"""Load call flows from YAML and check them: targets, reachability, dead ends, keys.

Two keys have one meaning wherever they work: :data:`BACK_KEY` is the way back in every menu
but the first (a node says ``back: <node>`` and the loader adds the option, last, with the
flow's one label and words for it; a menu that words its way back itself, like the story menu's
"back to the topics", may use the key only to lead to a menu), and :data:`LANGUAGE_KEY`
switches language on a call whose caller has not chosen one yet, so no option may use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from callflows.errors import FlowValidationError

DATA_DIR = Path(__file__).parent / "data"

# Actions the app knows how to carry out (each has a handler in ivr.webhooks), and the families
# of actions that take an argument: "story:<topic>" takes any topic name.
TOPIC_ACTIONS = frozenset({"story"})
ACTIONS = frozenset(
    {
        "peer",
        "story_peer",
        "story_replay",
        "story_next",
        "callback",
        "voicemail",
        "person",
        "crisis",
        "language",
        "pace_slow",
        "pace_normal",
        # callbacks (ivr.webhooks.callback_request)
        "callback_key",
        "callback_now",
        "callback_morning",
        "callback_afternoon",
        "callback_evening",
        "callback_message_yes",
        "callback_message_no",
        "callback_keep",
        "callback_cancel",
    }
)
# Keys that mean the same thing in every menu, so no menu may use them for an option.
GLOBAL_KEYS = {"*": "repeat", "0": "action:person", "9": "action:crisis"}
# A story's keys are the options of this menu (said after a story ends) while it plays and while
# it is paused too, plus one key that pauses and resumes it; so that menu may not use that key.
STORY_MENU = "story_after"
STORY_PAUSE_KEY = "2"
# The one key that goes back, in every menu but the first (which has nowhere to go back to):
# 5, as in the stories (5 goes back to the topics while a story plays and after it). A node
# says "back: <node>" and the loader adds the option, last, with the flow's one label and words.
BACK_KEY = "5"
# While a caller has not chosen a language (silent at the first question), this key switches
# to the other language in any menu. Not 2, the key of the first question: 2 is an option in
# nearly every menu.
LANGUAGE_KEY = "8"
MAX_OPTIONS = 5  # the way back included
MIN_OPTIONS = 1
# Phrases said with a number come in two forms, ``<name>`` and ``<name>_one`` (for 1), in every
# language: "about 1 minute", "la 1:15". Say them with :meth:`Flow.counted`.
COUNTED_STRINGS = frozenset({"hold_wait", "callback_key_short", "peer_locked", "time_hm", "time_h"})
REQUIRED_STRINGS = frozenset(
    {
        "greeting", "press", "global_keys", "global_keys_short", "no_input", "simpler", "invalid",
        "invalid_speech", "choices", "or_word", "crisis", "voicemail_consent", "voicemail_saved",
        "voicemail_saved_closed", "goodbye", "error", "error_hangup", "fallback", "key_star", "key_pound",
        # the first question, and a call that goes on before its caller chose a language
        "line_name", "language_offer", "language_crisis", "language_switch", "language_kept",
        # times of day, as people say them in the language (see callflows.callbacks.spoken_clock)
        "part_early", "part_morning", "part_noon", "part_afternoon", "part_night",
        "callback_not_saved",
        # the optional caller survey after a peer call
        "survey_intro", "survey_helped", "survey_again", "survey_invalid", "survey_thanks",
        *COUNTED_STRINGS, *(f"{name}_one" for name in COUNTED_STRINGS),
    }
)
# What the caller says to name each spoken key (for "Sorry, pound is not a choice here").
KEY_NAMES = {"*": "key_star", "#": "key_pound"}


@dataclass(frozen=True)
class Option:
    """One menu choice: a key, its spoken label, speech hints and where it leads."""

    key: str
    label: str
    speech: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class Menu:
    """A node of the flow: a prompt and 1 to 5 options."""

    id: str
    prompt: str
    simple: str
    default: str
    default_note: str  # said just before the default is taken: "I'll take you to ... now."
    options: tuple[Option, ...]
    back: str | None = None  # where BACK_KEY leads (the option is the last of ``options``)
    # The phrase said in full for the keys that work everywhere: a menu may word them itself
    # (the closed line's names no person, though 0 still works there); the short reminder is shared.
    global_keys: str = "global_keys"

    def option_for_key(self, key: str) -> Option | None:
        """The option bound to ``key``, if any."""
        return next((o for o in self.options if o.key == key), None)


@dataclass(frozen=True)
class Flow:
    """A whole call flow in one language."""

    language: str
    name: str
    voice: str
    say_language: str
    start: str
    nodes: Mapping[str, Menu]
    strings: Mapping[str, str]
    entry_points: tuple[str, ...]

    def text(self, name: str, /, **values: object) -> str:
        """A phrase from the flow's strings, with ``{placeholders}`` filled in."""
        return self.strings[name].format(**values)

    def counted(self, name: str, count: int, /, **values: object) -> str:
        """A phrase said with a number: ``<name>_one`` for 1 (when the flow has it), else ``<name>``."""
        singular = f"{name}_one"
        return self.text(singular if count == 1 and singular in self.strings else name, **values)

    def key_name(self, key: str) -> str:
        """A key as the caller hears it named: "star", "asterisco", or the digit."""
        name = KEY_NAMES.get(key)
        return self.text(name) if name else key


def _is_known_target(target: str, nodes: Mapping[str, Any]) -> bool:
    if target.startswith("action:"):
        name = target.removeprefix("action:")
        family, colon, argument = name.partition(":")
        return name in ACTIONS or bool(colon and family in TOPIC_ACTIONS and argument)
    return target in nodes


def validate(raw: Mapping[str, Any], source: str) -> list[str]:
    """Return every problem in a raw flow mapping, each naming its node."""
    problems: list[str] = []
    for field_name in ("language", "name", "voice", "say_language", "start", "nodes", "strings"):
        if field_name not in raw:
            problems.append(f"flow: missing field '{field_name}'")
    if problems:
        return problems
    nodes: Mapping[str, Any] = raw["nodes"] or {}
    missing = sorted(REQUIRED_STRINGS - set(raw["strings"] or {}))
    if missing:
        problems.append(f"strings: missing {', '.join(missing)}")
    back_option = raw.get("back")
    if back_option is not None and not (isinstance(back_option, Mapping) and back_option.get("label")):
        problems.append("back: needs a 'label' (and 'speech' words) for the way back")
        back_option = None
    if raw["start"] not in nodes:
        problems.append(f"start: unknown node '{raw['start']}'")
    for entry in raw.get("entry_points") or []:
        if entry not in nodes:
            problems.append(f"entry_points: unknown node '{entry}'")
    for node_id, node in nodes.items():
        if not isinstance(node, Mapping):
            problems.append(f"node '{node_id}': must be a mapping")
            continue
        for field_name in ("prompt", "simple", "default", "default_note"):
            if not node.get(field_name):
                problems.append(f"node '{node_id}': missing '{field_name}'")
        options = node.get("options") or []
        back = node.get("back")
        if back is not None and str(back) not in nodes:
            problems.append(f"node '{node_id}': back leads to unknown node '{back}'")
        if back is not None and not back_option:
            problems.append(f"node '{node_id}': has a way back, but the flow has no 'back' label and words")
        count = len(options) + (back is not None)
        if count < MIN_OPTIONS:
            problems.append(f"node '{node_id}': dead end, it has no options")
        if count > MAX_OPTIONS:
            problems.append(
                f"node '{node_id}': {count} options, at most {MAX_OPTIONS} keep a menu easy to hold in mind"
            )
        seen: set[str] = set()
        for opt in options:
            key = str(opt.get("key", ""))
            if key in GLOBAL_KEYS:
                problems.append(f"node '{node_id}': key '{key}' is reserved in every menu")
            elif key == BACK_KEY and back is not None:
                problems.append(f"node '{node_id}': key '{key}' is its way back (back: {back}), so no option may use it")
            elif key == BACK_KEY and node_id != raw["start"] and str(opt.get("target", "")).startswith("action:"):
                problems.append(
                    f"node '{node_id}': key '{key}' is the way back in every menu but the first; it must lead to a menu"
                )
            elif key == LANGUAGE_KEY:
                problems.append(f"node '{node_id}': key '{key}' is reserved for changing language")
            elif not (len(key) == 1 and key.isdigit()):
                problems.append(f"node '{node_id}': key '{key}' must be one digit")
            if node_id == STORY_MENU and key == STORY_PAUSE_KEY:
                problems.append(f"node '{node_id}': key '{key}' pauses and resumes a story, so it is no option here")
            if key in seen:
                problems.append(f"node '{node_id}': duplicate key '{key}'")
            seen.add(key)
            if not opt.get("label"):
                problems.append(f"node '{node_id}': option '{key}' has no label")
            target = str(opt.get("target", ""))
            if not _is_known_target(target, nodes):
                problems.append(f"node '{node_id}': option '{key}' leads to unknown target '{target}'")
        keys_phrase = node.get("global_keys")
        if keys_phrase is not None and str(keys_phrase) not in (raw["strings"] or {}):
            problems.append(f"node '{node_id}': global_keys names no phrase in strings: '{keys_phrase}'")
        default = node.get("default")
        if default and not _is_known_target(str(default), nodes):
            problems.append(f"node '{node_id}': default leads to unknown target '{default}'")
    problems.extend(_unreachable(raw, nodes))
    return problems


def _unreachable(raw: Mapping[str, Any], nodes: Mapping[str, Any]) -> list[str]:
    roots = [raw["start"], *(raw.get("entry_points") or [])]
    seen: set[str] = set()
    todo = [r for r in roots if r in nodes]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = nodes[node_id] if isinstance(nodes[node_id], Mapping) else {}
        targets = [str(o.get("target", "")) for o in node.get("options") or []]
        targets.append(str(node.get("default", "")))
        targets.append(str(node.get("back", "")))
        todo.extend(t for t in targets if t in nodes)
    return [f"node '{n}': unreachable from '{raw['start']}'" for n in nodes if n not in seen]


def build(raw: Mapping[str, Any], source: str) -> Flow:
    """Validate a raw mapping and build a :class:`Flow`, raising FlowValidationError."""
    problems = validate(raw, source)
    if problems:
        raise FlowValidationError(source, problems)
    nodes = {node_id: _menu(node_id, node, raw.get("back") or {}) for node_id, node in raw["nodes"].items()}
    return Flow(
        language=raw["language"],
        name=raw["name"],
        voice=raw["voice"],
        say_language=raw["say_language"],
        start=raw["start"],
        nodes=nodes,
        strings=dict(raw["strings"]),
        entry_points=tuple(raw.get("entry_points") or ()),
    )


def _option(raw: Mapping[str, Any]) -> Option:
    return Option(
        key=str(raw["key"]),
        label=raw["label"],
        speech=tuple(str(s).lower() for s in raw.get("speech") or ()),
        target=str(raw["target"]),
    )


def _menu(node_id: str, node: Mapping[str, Any], back_option: Mapping[str, Any]) -> Menu:
    options = [_option(o) for o in node.get("options") or ()]
    back = node.get("back")
    if back is not None:
        # The way back is the same key, label and words in every menu: the flow says them once.
        options.append(_option({**back_option, "key": BACK_KEY, "target": back}))
    return Menu(
        id=node_id,
        prompt=node["prompt"],
        simple=node["simple"],
        default=str(node["default"]),
        default_note=node["default_note"],
        options=tuple(options),
        back=None if back is None else str(back),
        global_keys=str(node.get("global_keys") or "global_keys"),
    )


def load_flow(path: Path) -> Flow:
    """Load and validate one flow file."""
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, Mapping):
        raise FlowValidationError(str(path), ["flow: file is not a mapping"])
    return build(raw, str(path))


def load_flows(directory: Path = DATA_DIR) -> dict[str, Flow]:
    """Load every ``*.yaml`` flow in a folder and check that languages mirror each other."""
    flows = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        flow = load_flow(path)
        flows[flow.language] = flow
    if not flows:
        raise FlowValidationError(str(directory), ["no flow files found"])
    problems = []
    reference = next(iter(flows.values()))
    shape = {n: sorted(o.key for o in m.options) for n, m in reference.nodes.items()}
    for flow in flows.values():
        other = {n: sorted(o.key for o in m.options) for n, m in flow.nodes.items()}
        for node_id in sorted(set(shape) | set(other)):
            if shape.get(node_id) != other.get(node_id):
                problems.append(
                    f"node '{node_id}': keys differ between '{reference.language}' and '{flow.language}'"
                )
    if problems:
        raise FlowValidationError(str(directory), problems)
    return flows
