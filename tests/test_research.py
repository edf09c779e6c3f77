"""``peerline export``: de-identified research CSV built from calls made through the webhooks."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from callflows import records, research
from callflows.research import DAY_COLUMNS, WEEK_COLUMNS, duration_bucket, research_pseudonym
from models import Call, Caller, Voicemail
from tests.factories import make_call, make_caller, make_peer, make_voicemail
from tests.helpers import TestCaller

RESEARCH_KEY = "research-key-for-tests"
NO_RECORD = dict.fromkeys(research.RECORD_COLUMNS, "")  # a call without a peer's post-call record


@pytest.fixture(autouse=True)
def research_key(app_config):  # type: ignore[no-untyped-def]
    """RESEARCH_KEY for the test app: the research pseudonyms' own key, apart from the data key."""
    app_config["research_key"] = RESEARCH_KEY

TRANSCRIPT = "I relapsed last night and I am thinking about an overdose, call me at five five five"


def browse_stories(caller: TestCaller) -> None:
    """Language 1 (unless remembered), main menu, 2 (stories), 5 (back), hang up after two minutes."""
    caller.call()
    if caller.twiml is not None and caller.twiml.find("Gather") is not None:
        caller.press("1")
    caller.to_menu()
    caller.press("2")
    caller.press("5")
    assert caller.said.startswith("What would you like to do?")
    hang_up(caller, 125)


def leave_voicemail(caller: TestCaller, sid: str) -> None:
    """Language 1, main menu, 4 (message), record, Twilio's recording callback, then hang up."""
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("4")
    record = caller.twiml.find("Record")
    assert record is not None
    caller.post(record.get("recordingStatusCallback"), RecordingSid=sid, RecordingStatus="completed",
                RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/{sid}",
                RecordingDuration="21")
    caller.post(record.get("action"), RecordingSid=sid, RecordingDuration="21")
    hang_up(caller, 40)


def hang_up(caller: TestCaller, seconds: int) -> None:
    """Twilio's status callback at the end of the call."""
    caller.post("/voice/status", CallStatus="completed", CallDuration=str(seconds))


def export_csv(runner, *args: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Run ``export`` without the small-group check (these few calls would all be blanked) and parse its CSV."""
    result = runner.invoke(args=["export", "--min-group", "1", *args])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_export_rows_are_coded_and_pseudonymous(svc, client, runner, db) -> None:  # type: ignore[no-untyped-def]
    browser = TestCaller(client, number="+1 (555) 555-0199")
    browse_stories(browser)
    texter = TestCaller(client, number="+15555550123")
    leave_voicemail(texter, "RE" + "a" * 32)
    hidden = TestCaller(client, number="anonymous")
    hidden.call()
    hidden.press("9")
    # What the transcription would have stored: an encrypted transcript with risk terms.
    vault = svc.vault
    vm = db.scalar(select(Voicemail))
    vm.transcript_encrypted = vault.encrypt_text(TRANSCRIPT)
    vm.risk_terms_encrypted = vault.encrypt_text('["relapsed", "overdose"]')
    vm.risk_level, vm.risk_score, vm.status = "high", 7, "transcribed"
    db.commit()

    result = runner.invoke(args=["export", "--min-group", "1"])
    assert result.exit_code == 0, result.output
    assert "the re-identification check is off" in result.stderr
    text = result.stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(DAY_COLUMNS)

    callers = {c.id: c for c in db.scalars(select(Caller))}
    calls = {c.call_sid: c for c in db.scalars(select(Call))}
    today = datetime.now(timezone.utc).date().isoformat()
    by_path = {row["menu_path"]: row for row in rows}
    assert len(rows) == 3
    assert by_path["incoming>language:1>main:2>stories:5"] == {
        "caller": research_pseudonym(RESEARCH_KEY, callers[calls[browser.call_sid].caller_id].number_hash),
        "call_date": today, "language": "en", "menu_path": "incoming>language:1>main:2>stories:5",
        "outcome": "hung_up", "duration": "1-5m", "voicemail_risk": "", **NO_RECORD,
    }
    assert by_path["incoming>language:1>main:4>voicemail"] == {
        "caller": research_pseudonym(RESEARCH_KEY, callers[calls[texter.call_sid].caller_id].number_hash),
        "call_date": today, "language": "en", "menu_path": "incoming>language:1>main:4>voicemail",
        "outcome": "voicemail", "duration": "0-1m", "voicemail_risk": "high", **NO_RECORD,
    }
    crisis = by_path["incoming>crisis:9"]
    assert crisis["caller"] == "" and crisis["language"] == ""

    # Nothing that identifies a caller or says what they said.
    for number in ("5555550199", "555-0199", "5555550123"):
        assert number not in text
    for caller_row in callers.values():
        assert caller_row.number_hash not in text
        assert caller_row.number_hash[:10] not in text
    assert not re.search(r"[0-9a-f]{16,}", text)
    for sid in calls:
        assert sid not in text
    assert "RE" + "a" * 32 not in text
    for word in ("relapsed", "overdose", "five", "night"):
        assert word not in text.lower()


def test_export_window_week_precision_and_output_file(runner, client, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    recent, old = TestCaller(client, number="+15555550101"), TestCaller(client, number="+15555550102")
    browse_stories(recent)
    browse_stories(old)
    old_call = db.scalar(select(Call).where(Call.call_sid == old.call_sid))
    old_call.started_at = datetime(2024, 3, 6, 23, 59, tzinfo=timezone.utc)  # a Wednesday, ISO week 10
    db.commit()

    only_old = export_csv(runner, "--since", "2024-03-06", "--until", "2024-03-06")
    assert [r["call_date"] for r in only_old] == ["2024-03-06"]
    assert export_csv(runner, "--until", "2024-03-05") == []
    recent_only = export_csv(runner, "--since", "2024-03-07")
    assert [r["call_date"] for r in recent_only] == [datetime.now(timezone.utc).date().isoformat()]

    out = tmp_path / "calls.csv"
    result = runner.invoke(args=["export", "--period", "week", "--min-group", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 2 calls" in result.output
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0].keys()) == list(WEEK_COLUMNS)
    assert rows[0]["call_week"] == "2024-W10"
    assert "2024-03-06" not in out.read_text()


def test_export_refuses_an_empty_window(runner) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["export", "--since", "2024-03-07", "--until", "2024-03-01"])
    assert result.exit_code != 0
    assert "--since must be on or before --until" in result.output


def test_duration_buckets_are_coarse() -> None:
    assert [duration_bucket(s) for s in (None, 0, 59, 60, 299, 300, 1799, 1800, 7200)] == [
        "", "0-1m", "0-1m", "1-5m", "1-5m", "5-15m", "15-30m", "30m+", "30m+"]


def test_old_calls_keep_their_day_in_utc() -> None:
    from callflows.research import period_label

    assert period_label(datetime(2024, 12, 30, 1, 0), "week") == "2025-W01"
    assert period_label(datetime(2024, 3, 6, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "day") == "2024-03-07"


@pytest.mark.parametrize("period", ["day", "week"])
def test_the_data_dictionary_describes_every_column_in_order(runner, period: str) -> None:  # type: ignore[no-untyped-def]
    docs = research.dictionary(period)
    assert [d.name for d in docs] == list(research.columns(period))
    assert all(d.type and d.meaning and d.allowed for d in docs)
    printed = runner.invoke(args=["export", "--dictionary", "--period", period])
    assert printed.exit_code == 0, printed.output
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    assert [r["column"] for r in rows] == list(research.columns(period))
    assert list(rows[0]) == ["column", "type", "meaning", "allowed_values"]


def test_parquet_export_writes_the_rows_and_their_dictionary(runner, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    browse_stories(TestCaller(client, number="+15555550151"))
    browse_stories(TestCaller(client, number="+15555550152"))
    as_csv = export_csv(runner)
    out = tmp_path / "calls.parquet"
    result = runner.invoke(args=["export", "--format", "parquet", "--min-group", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert f"exported 2 calls to {out}; data dictionary in {tmp_path / 'calls.dictionary.csv'}" in result.stderr
    table = pq.read_table(out)
    assert table.column_names == list(DAY_COLUMNS)
    assert table.to_pylist() == as_csv
    assert table.schema.field("caller").metadata[b"meaning"].startswith(b"research pseudonym of the caller")
    described = list(csv.DictReader((tmp_path / "calls.dictionary.csv").open(newline="")))
    assert [d["column"] for d in described] == table.column_names
    refused = runner.invoke(args=["export", "--format", "parquet"])
    assert refused.exit_code != 0 and "--format parquet needs --output FILE" in refused.output


def test_research_pseudonyms_link_periods_but_not_the_database(svc, runner, client, db) -> None:  # type: ignore[no-untyped-def]
    caller = TestCaller(client, number="+15555550161")
    browse_stories(caller)
    first = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    first.started_at = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    db.commit()
    again = TestCaller(client, number="+15555550161")
    browse_stories(again)
    january = export_csv(runner, "--until", "2026-01-31")
    later = export_csv(runner, "--since", "2026-02-01")
    assert len(january) == len(later) == 1
    assert january[0]["caller"] == later[0]["caller"]  # one caller, one pseudonym in every export
    stored = db.scalar(select(Caller))
    pseudonym = january[0]["caller"]
    assert re.fullmatch(r"P-[0-9a-f]{12}", pseudonym)
    # Nothing in the operational database computes or holds it: not the data key's pseudonym, not a stored hash.
    assert pseudonym != svc.vault.pseudonym("caller", stored.id)
    assert pseudonym[2:] not in stored.number_hash
    assert research_pseudonym("another research key", stored.number_hash) != pseudonym


def test_cells_shared_by_fewer_calls_than_the_minimum_are_blanked(runner, client) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        browse_stories(TestCaller(client, number=f"+1555555017{n}"))
    result = runner.invoke(args=["export"])  # the default minimum group: 11 calls
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3
    for row in rows:
        assert {k: v for k, v in row.items() if k != "caller"} == dict.fromkeys(
            ["call_date", "language", "menu_path", "outcome", "duration", "voicemail_risk", *research.RECORD_COLUMNS],
            "*")
        assert row["caller"].startswith("P-")
    assert "blanked (*) cells shared by fewer than 11 calls" in result.stderr
    # Three identical calls meet a minimum of 3: nothing is blanked.
    three = runner.invoke(args=["export", "--min-group", "3"])
    assert all(r["menu_path"] == "incoming>language:1>main:2>stories:5" for r in csv.DictReader(io.StringIO(three.stdout)))
    assert "every combination of coded fields is shared by at least 3 calls" in three.stderr


def test_protect_blanks_the_most_telling_field_first() -> None:
    common = {"caller": "P-1", "call_date": "2026-11-02", "language": "en", "menu_path": "incoming>main:1",
              "outcome": "hung_up", "duration": "1-5m", "voicemail_risk": "", **NO_RECORD}
    rows = [dict(common) for _ in range(3)] + [dict(common, menu_path=f"incoming>main:{key}") for key in "234"]
    protected, report = research.protect(rows, "day", min_group=3)
    # Three calls each with a path of its own lose that path, and then share every field: nothing more is blanked.
    assert protected[:3] == rows[:3]
    assert protected[3:] == [dict(common, menu_path="*")] * 3
    assert report.suppressed == {"menu_path": 3}
    # A call unlike any other in several fields is blanked field by field, the date last.
    odd = dict(common, language="es", duration="30m+", menu_path="x")
    protected, report = research.protect([*rows[:3], odd], "day", min_group=3)
    assert protected[3] == {"caller": "P-1", **dict.fromkeys(
        ["call_date", "language", "menu_path", "outcome", "duration", "voicemail_risk", *research.RECORD_COLUMNS],
        "*")}


def test_post_call_records_are_exported_as_codes(svc, runner, client, db) -> None:  # type: ignore[no-untyped-def]
    recorded, other = TestCaller(client, number="+15555550161"), TestCaller(client, number="+15555550162")
    browse_stories(recorded)
    browse_stories(other)
    peer = make_peer(db, svc.vault, phone="+15555550181", display_name="Sam")
    call = db.scalar(select(Call).where(Call.call_sid == recorded.call_sid))
    records.save(db, call.id, peer.id, "page", reason="medication_treatment", outcome="referred", referral=True,
                 risk="low")
    rows = {r["caller"]: r for r in export_csv(runner)}
    mine = rows[research_pseudonym(RESEARCH_KEY, db.get(Caller, call.caller_id).number_hash)]
    assert {k: mine[k] for k in research.RECORD_COLUMNS} == {
        "record_reason": "medication_treatment", "record_outcome": "referred", "record_referral": "yes",
        "record_risk": "low"}
    others = [r for r in rows.values() if r is not mine]
    assert len(others) == 1 and {k: others[0][k] for k in research.RECORD_COLUMNS} == NO_RECORD
    # The dictionary names every allowed code of the configured lists.
    docs = {d.name: d for d in research.dictionary()}
    assert docs["record_outcome"].allowed.startswith(
        "talked_through, referred, crisis_handoff, ended_early, other; empty when the peer recorded none")
    assert docs["record_referral"].allowed.startswith("yes, no;")


def test_record_codes_count_in_the_small_group_check() -> None:
    common = {"caller": "P-1", "call_date": "2026-11-02", "language": "en", "menu_path": "incoming>main:1",
              "outcome": "hung_up", "duration": "1-5m", "voicemail_risk": "", **NO_RECORD}
    rows = [dict(common) for _ in range(3)] + [dict(common, record_reason=code)
                                               for code in ("loneliness", "mental_health", "basic_needs")]
    protected, report = research.protect(rows, "day", min_group=3)
    # Three calls alike but for the reason each peer recorded: the path goes first, then the reason.
    assert protected[:3] == rows[:3]
    assert protected[3:] == [dict(common, menu_path="*", record_reason="*")] * 3
    assert report.suppressed == {"menu_path": 3, "record_reason": 3}


def test_a_message_with_only_negated_risk_words_is_exported_as_mentioned(svc, runner, db) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(timezone.utc)
    for number, level in (("+15555550161", "mentioned"), ("+15555550162", "unknown")):
        call = make_call(db, caller=make_caller(db, svc.vault, number), started_at=now, outcome="voicemail")
        make_voicemail(db, created_at=now, risk_level=level, call_id=call.id)
    # "mentioned" was triaged (only "I'm not suicidal"-like words); "unknown" could not be judged: left empty.
    assert sorted(row["voicemail_risk"] for row in export_csv(runner)) == ["", "mentioned"]
    allowed = {doc.name: doc.allowed for doc in research.dictionary()}["voicemail_risk"]
    assert allowed.startswith("none, mentioned, low, medium, high")
