"""The inbox of misunderstood messages (analytics/inbox.py): which messages it keeps and why, the review file it
writes, and accepting a reviewed file into a temporary copy of the training data: added once, clean for
`rasa data validate`, learned by the intent classifier. Bad input: one line, exit status 2, nothing written.

Conversations are written with Rasa's own SQLTrackerStore into a temporary SQLite file, as the bot writes them.
data/nlu.yml itself is never touched: every test works on a copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import shutil
import subprocess
import sys
import time
import types
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml

from analytics import inbox
from analytics.conversations import read_conversations
from shop.servers import RASA
from shop.settings import PROJECT_ROOT

NOW = time.time()
DAY = 86400.0


# ------------------------------------------------------------------------------------------ conversations
def said(text: str, intent: str, confidence: float, ranking: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
    """A customer message as NLU parsed it; `ranking` defaults to the intent alone."""
    entries = [{"name": name, "confidence": value} for name, value in (ranking or {intent: confidence}).items()]
    if intent == "nlu_fallback":
        entries = [{"name": "nlu_fallback", "confidence": confidence}, *entries]
    return {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [],
            "intent_ranking": entries}


def reply(action: str, name: str = "", clarification: bool = False) -> Dict[str, Any]:
    return {"action": action, "name": name or action, "clarification": clarification}


CONVERSATIONS: Dict[str, List[Any]] = {
    # NLU unsure: "Did you mean ...?", the customer clicks a button (a payload: never in the inbox)
    "unsure": [said("wheres the thingy i bought", "nlu_fallback", 0.8, {"order_status": 0.55, "return_item": 0.2}),
               reply("action_fallback", "clarify", clarification=True),
               said("/order_status", "order_status", 1.0), reply("order_status_form")],
    # the same message again, typed differently: one distinct message seen twice
    "unsure again": [said("Wheres the thingy I bought??", "nlu_fallback", 0.8, {"order_status": 0.5}),
                     reply("action_fallback", "clarify", clarification=True)],
    # acted on, but below the threshold the test asks for (0.9)
    "low": [said("can u chek wot happend to my parcel", "order_status", 0.85,
                 {"order_status": 0.85, "refund_status": 0.1}), reply("order_status_form")],
    # declined as out of scope
    "weather": [said("what's the weather like in paris", "out_of_scope", 0.97), reply("action_fallback",
                                                                                      "out_of_scope")],
    # confidently wrong, then the customer says it again in other words
    "rephrased": [said("stop order 10005 from shipping", "return_item", 0.93), reply("return_form"),
                  said("cancel order 10005 please", "cancel_order", 0.98), reply("cancel_form")],
    # answered, then a person asked for: the first message was not understood
    "handoff": [said("my order came with someone elses stuff in it", "ask_question", 0.91),
                reply("action_generate_reply"),
                said("talk to a person", "human_handoff", 0.99), reply("action_handoff", "handoff_created")],
    # personal data: the email is masked, the order number annotated
    "email": [said("order 10002 never came, email is jane.roe@gmail.com", "nlu_fallback", 0.8,
                   {"order_status": 0.6}), reply("action_fallback", "default")],
    # understood, form answers and a handoff after failed checks: nothing to learn
    "fine": [said("where is my order", "order_status", 0.99), reply("order_status_form"),
             said("10003", "inform", 1.0), reply("order_status_form"),
             said("bob@example.com", "inform", 1.0), reply("order_status_form"),
             said("yes", "affirm", 0.99), reply("action_handoff", "handoff_created"),
             said("thanks", "thank", 0.99), reply("utter_thank")],
}
OLD = {"old": [said("a message from last month", "nlu_fallback", 0.8, {"greet": 0.3}),
               reply("action_fallback", "default")]}


def write_store(path: Path, conversations: Dict[str, List[Any]], at: float) -> str:
    """The conversations in a SQLite tracker store, written by Rasa's SQLTrackerStore; returns its URL."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(path))
    clock = at
    for sender, steps in conversations.items():
        events: List[Any] = [ActionExecuted("action_session_start", timestamp=clock),
                             ActionExecuted("action_listen", timestamp=clock)]
        for step in steps:
            clock += 2
            if "text" in step:
                events.append(UserUttered(step["text"], step["intent"], [], step, timestamp=clock))
            else:
                events.append(ActionExecuted(step["action"], timestamp=clock))
                metadata = {"message_name": step["name"]}
                if step["clarification"]:
                    metadata["clarification"] = True
                events.append(BotUttered(f"({step['name']})", metadata=metadata, timestamp=clock + 0.5))
                events.append(ActionExecuted("action_listen", timestamp=clock + 1))
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))
    store.engine.dispose()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tracker") / "tracker.db"
    write_store(path, CONVERSATIONS, NOW - DAY)
    return write_store(path, OLD, NOW - 30 * DAY)


@pytest.fixture(scope="module")
def encoder() -> inbox.Encoder:
    return inbox.Encoder()


@pytest.fixture
def nlu_copy(tmp_path) -> Path:
    copy = tmp_path / "data" / "nlu.yml"
    copy.parent.mkdir()
    shutil.copyfile(PROJECT_ROOT / "data" / "nlu.yml", copy)
    return copy


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def cli():
    """analytics.__main__.main; while the report and simulate subcommands are not written yet, stand-ins let the
    module import (only for modules whose file does not exist)."""
    added = []
    for name in ("report", "simulate"):
        if not (PROJECT_ROOT / "analytics" / f"{name}.py").exists() and f"analytics.{name}" not in sys.modules:
            stand_in = types.ModuleType(f"analytics.{name}")
            stand_in.add_parser = lambda subparsers, name=name: subparsers.add_parser(name)
            sys.modules[f"analytics.{name}"] = stand_in
            added.append(f"analytics.{name}")
    module = importlib.import_module("analytics.__main__")
    yield module.main
    for name in added:
        sys.modules.pop(name, None)


def run(cli, capsys, *argv: str):
    code = cli(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------------------------- selection
def test_keeps_each_kind_of_misunderstood_message_and_says_why(store, encoder):
    conversations = read_conversations(store, since=NOW - 7 * DAY).conversations
    flagged = inbox.select(conversations, threshold=0.9, encoder=encoder)
    reasons = {message.text: set(message.reasons) for message in flagged}
    assert reasons == {
        "wheres the thingy i bought": {inbox.FALLBACK, inbox.CLARIFIED, inbox.LOW_CONFIDENCE},
        "Wheres the thingy I bought??": {inbox.FALLBACK, inbox.CLARIFIED, inbox.LOW_CONFIDENCE},
        "can u chek wot happend to my parcel": {inbox.LOW_CONFIDENCE},
        "what's the weather like in paris": {inbox.DECLINED},
        "stop order 10005 from shipping": {inbox.REPHRASED},
        "my order came with someone elses stuff in it": {inbox.HANDOFF},
        "order 10002 never came, email is jane.roe@gmail.com": {inbox.FALLBACK, inbox.LOW_CONFIDENCE},
    }
    items = inbox.deduplicate(flagged)
    assert items[0].count == 2 and items[0].example == "wheres the thingy i bought"
    assert len(items) == len(reasons) - 1


def test_the_threshold_comes_from_config_yml():
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())
    step = next(step for step in config["pipeline"] if step["name"] == "FallbackClassifier")
    assert inbox.fallback_threshold(PROJECT_ROOT / "config.yml") == step["threshold"]


def test_emails_are_masked_and_references_annotated_as_in_nlu_yml():
    assert inbox.annotate("order 10002 never came, email is Jane.Roe@gmail.com") == \
        "order [10002](order_id) never came, email is [customer@example.com](email)"
    assert inbox.annotate("refund for R-8 please") == "refund for [R-8](return_id) please"
    assert inbox.annotate("is [this] #10004?") == "is (this) #[10004](order_id)?"
    assert inbox.example_key(inbox.annotate("Where is order 10002?")) == \
        inbox.example_key(inbox.annotate("where is order 10003"))
    filler = inbox._filler_words()
    assert inbox.is_bare_reference(inbox.annotate("my order number is 10002"), filler)
    assert not inbox.is_bare_reference(inbox.annotate("cancel 10002"), filler)


def test_durations_and_dates_for_since():
    assert inbox.parse_when("7d", "--since", now=1_000_000.0) == 1_000_000.0 - 7 * DAY
    assert inbox.parse_when("12h", "--since", now=100_000.0) == 100_000.0 - 12 * 3600
    assert inbox.parse_when("all", "--since") is None
    assert inbox.parse_when("2026-11-01", "--since") == 1793491200.0
    with pytest.raises(inbox.UsageProblem):
        inbox.parse_when("last week", "--since")


# ----------------------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def exported(store, tmp_path_factory, cli) -> Path:
    out = tmp_path_factory.mktemp("inbox") / "inbox.yml"
    code = cli(["inbox", "export", "--tracker-store", store, "--out", str(out), "--threshold", "0.9"])
    assert code == 0
    return out


def test_export_writes_rasa_nlu_yaml_with_review_comments(exported):
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    text = exported.read_text()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = RasaYAMLReader().reads(text)
    assert not [warning for warning in caught if issubclass(warning.category, UserWarning)]  # e.g. a skipped line
    examples = {message.get("text") for message in data.intent_examples}
    assert "wheres the thingy i bought" in examples
    assert "a message from last month" not in examples  # older than --since 7d
    assert not {"10003", "bob@example.com", "yes", "thanks", "where is my order", "/order_status"} & examples
    assert "jane.roe" not in text and "order [10002](order_id) never came, email is [customer@example.com](email)" \
        in text
    blocks = yaml.safe_load(text)["nlu"]
    assert sum(len(block["examples"].splitlines()) for block in blocks) == 6
    assert text.count("# -- cluster ") == len(blocks)
    assert ('#   "wheres the thingy i bought" x2: fallback x2; clarification x2; low confidence x2 (lowest 0.50 < 0.9)'
            '; classifier: order_status') in text
    assert "change the intent to out_of_scope" in text
    suggested = {block["intent"] for block in blocks}
    assert suggested <= set(yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())["intents"])


def test_export_suggests_the_classifiers_guess(exported):
    blocks = yaml.safe_load(exported.read_text())["nlu"]
    intent_of = {line[2:]: block["intent"] for block in blocks for line in block["examples"].splitlines()}
    assert intent_of["what's the weather like in paris"] == "out_of_scope"
    assert intent_of["wheres the thingy i bought"] == "order_status"
    assert "# suggested intent order_status (the classifier's most frequent best guess)" in exported.read_text()


def test_a_sure_guess_the_customers_contradict_is_not_suggested():
    item = inbox.Item("stop order [10005](order_id) from shipping", "stop order order id from shipping", count=2,
                      reasons=Counter({inbox.REPHRASED: 1, inbox.HANDOFF: 2}), guesses=Counter({"return_item": 2}))
    nearest = [("return_item", 0.61), ("cancel_order", 0.6), ("order_status", 0.5)]
    cluster = inbox.Cluster([item], nearest)
    inbox.suggest(cluster)
    assert cluster.suggested == "cancel_order" and "contradict" in cluster.suggested_by
    inbox.suggest(cluster, "classifier")
    assert cluster.suggested == "return_item"
    item.reasons[inbox.LOW_CONFIDENCE] += 1  # unsure as well: the classifier's guess again
    inbox.suggest(cluster)
    assert cluster.suggested == "return_item"


# ----------------------------------------------------------------------------------------------- accept
REVIEWED = """\
version: "3.1"
nlu:
# reviewed: the suggestion was right
- intent: order_status
  examples: |
    - wheres the thingy i bought
    - can u chek wot happend to my parcel
- intent: cancel_order
  examples: |
    - stop order [10005](order_id) from shipping
    - kill my order
# marked out of scope
- intent: out_of_scope
  examples: |
    - what's the weather like in paris
- intent: return_item
  examples: |
    - where is my order
"""
ADDED = {"wheres the thingy i bought": "order_status", "can u chek wot happend to my parcel": "order_status",
         "stop order [10005](order_id) from shipping": "cancel_order", "kill my order": "cancel_order",
         "what's the weather like in paris": "out_of_scope"}


def examples_of(path: Path) -> Dict[str, List[str]]:
    return inbox.read_nlu_examples(path)


def test_accept_adds_once_reports_conflicts_and_keeps_the_file(tmp_path, nlu_copy, cli, capsys):
    reviewed = tmp_path / "reviewed.yml"
    reviewed.write_text(REVIEWED)
    original = nlu_copy.read_text()
    code, out, err = run(cli, capsys, "inbox", "accept", str(reviewed), "--nlu", str(nlu_copy))
    assert code == 0, err
    assert "added 5 examples (cancel_order 2, order_status 2, out_of_scope 1); 0 already there; 1 conflict" in out
    assert "conflict  return_item: where is my order (already an example of order_status; not added)" in out
    after = examples_of(nlu_copy)
    for example, intent in ADDED.items():
        everywhere = [name for name, examples in after.items() for line in examples if line == example]
        assert everywhere == [intent]
    assert after["return_item"] == examples_of(PROJECT_ROOT / "data" / "nlu.yml")["return_item"]
    # every line of the file is still there, in order, comments included: the merge only inserted lines
    merged = nlu_copy.read_text().splitlines()
    position = 0
    for line in original.splitlines():
        position = merged.index(line, position) + 1
    assert len(merged) == len(original.splitlines()) + 5
    assert merged[merged.index("    - kill my order") - 1].startswith("    - ")  # at the end of its block

    code, out, _ = run(cli, capsys, "inbox", "accept", str(reviewed), "--nlu", str(nlu_copy))
    assert code == 0
    assert "added 0 examples; 5 already there; 1 conflict" in out
    assert nlu_copy.read_text().splitlines() == merged


def test_a_new_intent_block_and_a_dry_run(tmp_path, nlu_copy):
    reviewed = tmp_path / "reviewed.yml"
    reviewed.write_text('nlu:\n- intent: ask_question\n  examples: |\n    - do you sell spare parts for kettles\n')
    before = digest(nlu_copy)
    result = inbox.accept(reviewed, nlu_copy, PROJECT_ROOT / "domain.yml", dry_run=True)
    assert result.added == [("ask_question", "do you sell spare parts for kettles")] and digest(nlu_copy) == before
    text = "version: '3.1'\nnlu:\n- intent: greet\n  examples: |\n    - hi\n\n- regex: email\n  examples: |\n    - x"
    merged = inbox.merge_text(text, {"greet": ["hiya there"], "thank": ["cheers mate"]})
    data = yaml.safe_load(merged)
    assert data["nlu"][0]["examples"] == "- hi\n- hiya there\n"
    assert data["nlu"][1] == {"intent": "thank", "examples": "- cheers mate\n"}
    assert data["nlu"][2]["regex"] == "email"


def test_round_trip_is_clean_for_rasa_data_validate(tmp_path, nlu_copy, exported):
    """The export, accepted as suggested, then `rasa data validate --fail-on-warnings` on the copy, as
    scripts/test.sh validates the real data (about 30 s: Rasa loads the domain, rules and stories)."""
    result = inbox.accept(exported, nlu_copy, PROJECT_ROOT / "domain.yml")
    assert result.added and not result.conflicts
    validation = subprocess.run(
        [RASA, "data", "validate", "--fail-on-warnings", "--domain", "domain.yml", "--data", str(nlu_copy),
         "data/rules.yml", "data/stories.yml"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert validation.returncode == 0, validation.stdout[-3000:] + validation.stderr[-3000:]
    assert "UserWarning" not in validation.stdout + validation.stderr


def test_the_retrained_classifier_learns_the_accepted_examples(tmp_path, nlu_copy):
    """The intent classifier's own training (tests/components/test_transformer_intent_classifier.py) on the merged
    copy, in fewer epochs than config.yml's 50 to stay near a minute on 2 cores; every accepted example is then
    classified as reviewed. Retraining the whole model (about 5 minutes) is bench/learning_loop.py's job."""
    from rasa.shared.nlu.training_data.loading import load_data

    from tests.components.test_transformer_intent_classifier import load, parse, train

    reviewed = tmp_path / "reviewed.yml"
    reviewed.write_text(REVIEWED)
    inbox.accept(reviewed, nlu_copy, PROJECT_ROOT / "domain.yml")
    config = {"epochs": 8, "batch_size": 32, "max_length": 32, "calibration_fraction": 0.0, "device": "cpu",
              "random_seed": 42}
    storage = tmp_path / "storage"
    storage.mkdir()
    trained = train(storage, config, load_data(str(nlu_copy)))
    texts = [inbox.plain_text(example) for example in ADDED]
    predicted = [message.get("intent")["name"] for message in parse(load(trained), texts)]
    assert dict(zip(texts, predicted, strict=True)) == {inbox.plain_text(example): intent
                                                         for example, intent in ADDED.items()}


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("nlu:\n- intent: greet\n  examples: |\n    - hi\n   - broken: [\n", "is not valid YAML at line"),
    ("nlu:\n- intent: order_statuss\n  examples: |\n    - where is it\n", "unknown intent 'order_statuss'"),
    ("nlu:\n- intent: greet\n  examples: |\n    - hi [bob](name)\n", "annotates an entity the domain does not have"),
    ("nlu:\n- intent: greet\n  examples: |\n    hi there\n", "not starting with '- '"),
    ("nlu:\n- regex: email\n  examples: |\n    - x\n", "only `- intent:` blocks"),
    ("nlu: []\n", "has no examples"),
    ("- just a list\n", "is not Rasa NLU YAML"),
])
def test_bad_reviewed_files_are_one_line_and_write_nothing(tmp_path, nlu_copy, cli, capsys, content, expected):
    reviewed = tmp_path / "reviewed.yml"
    if content is not None:
        reviewed.write_text(content)
    before = digest(nlu_copy)
    code, out, err = run(cli, capsys, "inbox", "accept", str(reviewed), "--nlu", str(nlu_copy))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("analytics inbox: ") and expected in err, err
    assert "Traceback" not in err + out
    assert digest(nlu_copy) == before


@pytest.mark.parametrize("argv, expected", [
    (["--tracker-store", "sqlite:////nonexistent/tracker.db"], "the file does not exist"),
    (["--tracker-store", "not a url"], "is not a database URL"),
    (["--since", "last week"], "expected a duration such as 7d"),
    (["--threshold", "high"], "expected a number between 0 and 1"),
])
def test_bad_export_options_are_one_line(tmp_path, store, cli, capsys, argv, expected):
    out = tmp_path / "inbox.yml"
    arguments = ["inbox", "export", "--out", str(out), *argv]
    if "--tracker-store" not in argv:
        arguments += ["--tracker-store", store]
    code, stdout, err = run(cli, capsys, *arguments)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err + stdout, err
    assert not out.exists()


def test_an_empty_period_or_store_is_one_line(tmp_path, store, cli, capsys):
    code, _, err = run(cli, capsys, "inbox", "export", "--tracker-store", store, "--since", "2020-01-01",
                       "--until", "2020-02-01", "--out", str(tmp_path / "inbox.yml"))
    assert code == 2 and "no conversations from 2020-01-01" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, _, err = run(cli, capsys, "inbox", "export", "--tracker-store", f"sqlite:///{empty}",
                       "--out", str(tmp_path / "inbox.yml"))
    assert code == 2 and "no `events` table" in err and len(err.strip().splitlines()) == 1
