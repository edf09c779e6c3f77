"""The Reports page: figures, server-drawn charts with data tables, staffing advice, a suppressed CSV."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import html
from sqlalchemy import select

from callflows import metrics, shifts
from models import AuditEntry
from simulator.cli import call_command
from tests.conftest import tone_wav
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN
from tests.test_dashboard import sign_in
from tests.test_metrics import add_records, history  # noqa: F401  (the constructed day, a fixture)

DAY = "/staff/reports?since=2026-11-02&until=2026-11-02"


def page(client: Any, path: str = DAY) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return html.fromstring(response.get_data(as_text=True))


def text(doc: Any, xpath: str) -> str:
    return " ".join(doc.xpath(xpath)[0].text_content().split())


def cells(row: Any) -> list[str]:
    return [" ".join(c.text_content().split()) for c in row.xpath("./th|./td")]


def table_rows(doc: Any, table_id: str) -> list[list[str]]:
    return [cells(tr) for tr in doc.xpath(f'//table[@id="{table_id}"]/tbody/tr')]


@pytest.mark.usefixtures("history")
def test_supervisor_sees_the_days_figures_charts_and_tables(client, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    doc = page(client)
    assert text(doc, '//p[@class="meta"]') == "From 2026-11-02 to 2026-11-02, days and hours in America/New_York."
    figures = {cell.get("id"): " ".join(cell.text_content().split()) for cell in doc.xpath('//table[@id="figures"]//td[@id]')}
    assert figures == {"fig-offered": "10", "fig-answered": "3", "fig-ab-menus": "1", "fig-ab-ringing": "1",
                       "fig-ab-hold": "1", "fig-asa": "27 s", "fig-asa90": "50 s", "fig-sl": "40 %",
                       "fig-longest": "90 s", "fig-aht": "3.3 min", "fig-acw": "90 s", "fig-occupancy": "1 %",
                       "fig-cb": "3", "fig-crisis": "1", "fig-handoffs": "2 (1 answered)"}
    # Every chart is an image with a title and a description, and its figures are in a table.
    charts = doc.xpath('//svg[@class="chart"]')
    assert [c.get("role") for c in charts] == ["img"] * 3
    assert [c.xpath("./title")[0].text for c in charts] == [
        "Calls offered and answered by hour of the day", "Heat map of calls offered by weekday and hour",
        "Callers by time waited for a peer"]
    hours = table_rows(doc, "by-hour")
    assert hours == [["09:00", "1", "1", "0"], ["10:00", "2", "1", "1"], ["11:00", "2", "0", "2"],
                     ["12:00", "3", "0", "0"], ["13:00", "1", "1", "0"], ["23:00", "1", "0", "0"]]
    assert len(charts[0].xpath(".//rect")) == 48
    monday = table_rows(doc, "by-hour-of-week")[0][1:]
    assert monday[9:14] == ["1", "2", "2", "3", "1"] and monday[23] == "1"
    heat_titles = [r.xpath("./title")[0].text for r in charts[1].xpath(".//rect")]
    assert "Monday 12:00, 3 calls" in heat_titles and len(heat_titles) == 7 * 24
    waits = {row[0]: row[1:] for row in table_rows(doc, "waits")}
    assert waits["10-30 s"] == ["2", "0"] and waits["30-60 s"] == ["1", "1"] and waits["1-2 min"] == ["0", "1"]
    assert table_rows(doc, "voicemails")[0] == ["High risk", "1", "10.0 min"]
    # Levels in words, as on the inbox: no raw codes.
    assert [row[0] for row in table_rows(doc, "voicemails")][-3:] == ["No risk words", "Risk unknown", "Not yet triaged"]
    assert table_rows(doc, "survey")[0] == ["Did this call help?", "2", "4.5", "0", "0", "0", "1", "1"]


@pytest.mark.usefixtures("history")
def test_staffing_advice_sits_beside_the_plan_with_its_assumptions(client, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    doc = page(client)
    rows = table_rows(doc, "staffing")
    # One peer request an hour at 09:00 (talk 300 s + 90 s average wrap-up): one peer, no shift plan yet.
    assert rows[0] == ["Monday 09:00", "1.0", "6.5 min", "1", "no plan", "-"]
    assert [r[0] for r in rows] == ["Monday 09:00", "Monday 10:00", "Monday 11:00", "Monday 13:00"]
    assert "nobody hangs up while waiting" in text(doc, '//ul[@id="assumptions"]')


@pytest.mark.usefixtures("history")
def test_staffing_advice_shows_the_shift_rota_and_the_hours_short_of_peers(client, dashboard_data, db) -> None:  # type: ignore[no-untyped-def]
    shifts.add_template(db, 0, 9 * 60, 10 * 60 + 30, 1, ["en"], False, None)  # Monday 09:00-10:30, 1 peer
    shifts.add_template(db, 0, 13 * 60, 15 * 60, 2, ["en"], False, None)  # Monday 13:00-15:00, 2 peers
    shifts.add_template(db, 0, 8 * 60, 18 * 60, 4, ["en"], True, None)  # on call all day: not counted
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    doc = page(client)
    rows = table_rows(doc, "staffing")
    # 10:00 has the 09:00 shift for 30 minutes; 11:00 has none; 14:00 is planned with no calls in the period.
    assert [[r[0], r[3], r[4], r[5]] for r in rows] == [
        ["Monday 09:00", "1", "1", "0"], ["Monday 10:00", "1", "1", "0"], ["Monday 11:00", "1", "0", "1 short"],
        ["Monday 13:00", "1", "2", "0"], ["Monday 14:00", "0", "2", "0"]]
    assert [r.xpath("./th")[0].text_content() for r in doc.xpath('//table[@id="staffing"]/tbody/tr[@class="short"]')] \
        == ["Monday 11:00"]
    assert text(doc, '//strong[@id="short-summary"]') == "1 hour of the week short of peers"
    assert "on-call (backup) shifts are not counted" in text(doc, '//li[@id="plan-assumption"]')


@pytest.mark.usefixtures("history")
def test_csv_download_hides_small_counts_and_is_audited(client, dashboard_data, db) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    response = client.get("/staff/reports.csv?since=2026-11-02&until=2026-11-02")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = {(s, i): v for s, i, v in list(csv.reader(io.StringIO(response.get_data(as_text=True))))[1:]}
    assert rows[("calls", "offered")] == "<11"
    assert rows[("calls", "answered_by_peer")] == "<11"
    assert rows[("answer", "speed_of_answer_avg_s")] == "<11"
    assert rows[("voicemails", "none")] == "0"
    counts = {key: v for key, v in rows.items()
              if key[0] not in ("period", "answer") and not key[1].endswith(("_average", "_avg_s"))}
    assert counts and all(v in ("0", "<11") or int(v) >= 11 for v in counts.values() if v), counts
    assert rows[("answer", "occupancy_pct")] == "1"  # a share of peer time, not a count of callers
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "export_report")).all()
    assert [e.detail for e in entries] == ["2026-11-02 to 2026-11-02"]


def test_the_report_counts_post_call_records_by_outcome_and_reason(client, dashboard_data, db, history) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    add_records(db, history)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    doc = page(client)
    assert table_rows(doc, "record-outcomes") == [["Talked it through", "1"], ["Referred", "1"], ["Crisis hand-off", "0"],
                                                  ["Ended early", "0"], ["Other", "0"], ["Not given", "1"]]
    assert table_rows(doc, "record-reasons")[:2] == [["Loneliness or isolation", "2"], ["Substance use or cravings", "1"]]
    assert "3 of this period's 10 calls have a peer's record." in text(doc, '//section[@aria-labelledby="h-records"]')
    response = client.get("/staff/reports.csv?since=2026-11-02&until=2026-11-02")
    rows = {(s, i): v for s, i, v in list(csv.reader(io.StringIO(response.get_data(as_text=True))))[1:]}
    assert (rows[("record_outcome", "talked_through")], rows[("record_outcome", "ended_early")],
            rows[("record_reason", "loneliness")]) == ("<11", "0", "<11")


def test_peers_cannot_see_reports(client, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert client.get("/staff/reports").status_code == 403
    assert client.get("/staff/reports.csv").status_code == 403


def test_a_bad_date_says_so_and_shows_the_default_period(client, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    doc = page(client, "/staff/reports?since=yesterday")
    assert "'yesterday' is not a date" in text(doc, '//div[@class="messages"]')
    assert text(doc, '//td[@id="fig-offered"]') == "0"


def test_small_cell_suppression_hides_a_second_cell_when_one_could_be_subtracted() -> None:
    assert [metrics.suppress(n) for n in (0, 1, 10, 11, 250)] == ["0", "<11", "<11", "11", "250"]
    # 40 = 25 + 12 + 3: hiding only the 3 would leave it as 40 - 25 - 12, so the 12 is hidden as well.
    assert metrics.suppress_group([25, 12, 3]) == ["25", "<11", "<11"]
    assert metrics.suppress_group([25, 2, 3]) == ["25", "<11", "<11"]
    assert metrics.suppress_group([25, 0, 13]) == ["25", "0", "13"]



@pytest.fixture
def tour_network(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network the app rings peers through; its peers press 1 (set before the app is built)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    phone_network.state.peer_answers = "accept"
    return phone_network


def test_after_a_simulated_tour_the_reports_show_its_calls(tour_network, live_app, client, dashboard_data,  # type: ignore[no-untyped-def]
                                                           tmp_path) -> None:
    """The simulator's tour over real HTTP (a peer call, a story menu, a message, the crisis key, a hang-up)."""
    tour_network.state.rewrite[PUBLIC_BASE] = live_app  # the peers' phones reach the app where it listens
    message = tmp_path / "message.wav"
    message.write_bytes(tone_wav(2.0))
    common = ["--url", live_app, "--public-url", PUBLIC_BASE, "--token", TEST_AUTH_TOKEN,
              "--network", tour_network.base_url, "--max-seconds", "60"]
    for n, script in enumerate(["1,1", "1,2", "1,4", "1,9", "2"]):
        extra = ["--record", str(message)] if script == "1,4" else []
        result = CliRunner().invoke(call_command, ["--script", script, "--talk-seconds", "1",
                                                   "--from", f"+1555555019{n}", *common, *extra])
        assert result.exit_code == 0, result.output
        if script == "1,1":
            assert "[connected: you are in the conversation]" in result.output
    tour_network.state.wait_for_legs()
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    doc = page(client, "/staff/reports")
    figures = {cell.get("id"): " ".join(cell.text_content().split()) for cell in doc.xpath('//table[@id="figures"]//td[@id]')}
    assert (figures["fig-offered"], figures["fig-answered"], figures["fig-ab-menus"], figures["fig-crisis"]) == \
        ("5", "1", "2", "1")  # the story menu without hearing a story counts as hung up in the menus
    assert figures["fig-sl"] == "100 %" and figures["fig-asa"].endswith(" s") and figures["fig-aht"].endswith(" s")
    assert sum(int(row[1]) for row in table_rows(doc, "by-hour")) == 5
    assert {row[0]: row[1:] for row in table_rows(doc, "by-language")} == {"en": ["4", "1", "1"], "es": ["1", "0", "1"]}
    assert sum(int(v) for row in table_rows(doc, "by-hour-of-week") for v in row[1:]) == 5
    assert sum(int(row[1]) for row in table_rows(doc, "waits")) == 1
    # The message left on the tour (waiting for transcription), besides the fixture's four.
    assert sum(int(row[1]) for row in table_rows(doc, "voicemails")) == 5
    assert len(table_rows(doc, "staffing")) == 1
