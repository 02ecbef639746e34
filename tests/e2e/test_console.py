"""The console page (GET /) in a real browser, against the real server and its /stream."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, Route, expect

from tests.e2e.browser import ARTIFACTS, Visit
from tests.support import EXAMPLE_PROFILES, TOKEN, Server

LIVE = 15_000  # ms for the page to load and subscribe (a cold server's first reads)
SOON = 2_000  # ms from a committed order to the page showing it
NETWORK = re.compile(r"^Failed to load resource: net::ERR_")  # a server that is away


def place(
    server: Server, strategy: str, instrument: str, side: str, order_id: str, **more: Any
) -> Any:
    body = {"STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": side, "ORDER_ID": order_id}
    body.update(more)
    response = server.post(body)
    assert response.status_code == 200, response.text
    return response.json()


def open_console(visit: Visit, server: Server, search: str = "") -> Page:
    """Open the console and wait until it follows the stream."""
    visit.page.goto(f"{server.url}/{search}")
    expect(visit.page.locator("#connection")).to_have_text("live", timeout=LIVE)
    return visit.page


def row(page: Page, order_id: str) -> Any:
    return page.locator(f'#tape > li[data-order-id="{order_id}"]')


def tape(page: Page) -> list[str]:
    ids: list[str] = page.locator("#tape > li").evaluate_all(
        "nodes => nodes.map(node => node.dataset.orderId)"
    )
    return ids


def clean(visit: Visit) -> None:
    assert visit.blocked == []
    assert visit.console_errors == []
    assert visit.page_errors == []


def test_console_loads_from_the_server_alone(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    place(embedded_server, "STRATEGY_B", "MINDA", "BUY", "first")
    place(embedded_server, "STRATEGY_Z", "ACC", "SELL", "nobody")
    visit = browse(embedded_server)
    page = open_console(visit, embedded_server)
    expect(page.locator("#tape > li")).to_have_count(2)
    assert tape(page) == ["nobody", "first"]  # newest first
    expect(row(page, "first")).to_have_class("accepted")
    expect(row(page, "nobody")).to_have_class("rejected")
    expect(page.locator("#users")).to_contain_text("Kamryn Li")
    expect(page.locator("#positions")).to_contain_text("MINDA")
    expect(page.locator("#positions-more")).to_have_count(0)  # every position is shown
    expect(page.locator("#sequence")).not_to_have_text("–")
    expect(page.locator("#lag")).to_have_text(re.compile(r"^\d+$"))
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width, height in [("laptop", 1280, 800), ("phone", 390, 844)]:
        page.set_viewport_size({"width": width, "height": height})
        # Readable at that width: nothing wider than the viewport.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=ARTIFACTS / f"console-{name}.png", full_page=True)
    paths = {url.removeprefix(embedded_server.url) for url in visit.requested}
    assert {"/console/assets/main.js", "/console/assets/console.css"} <= paths
    assert any(path.startswith("/stream") for path in paths)
    clean(visit)


def test_scaled_books_and_hostile_names_render_in_place(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    server = embedded_server
    spoof = "x\u202eDETPECCA"  # a right-to-left override: must not turn what follows around
    long = "W" * 64
    for user, strategy, body in [
        ("Kamryn Li", "STRATEGY_A", {"instruments": ["ACC", spoof], "multiplier": "3"}),
        (long, long, {"instruments": ["ACC"]}),
    ]:
        put = httpx.put(f"{server.url}/users/{quote(user)}/strategies/{strategy}", json=body)
        assert put.status_code == 200, put.text
    visit = browse(server)
    page = open_console(visit, server)  # it was left offline by a scaled book
    user = page.locator('#users li[data-user="Kamryn Li"]')
    expect(user).to_contain_text("STRATEGY_A ×3: ACC, ")
    # Each name isolated: the override cannot reach the other names or labels.
    isolated = user.locator("bdi").evaluate_all("nodes => nodes.map(n => n.textContent)")
    assert isolated[:4] == ["Kamryn Li", "STRATEGY_A", "ACC", spoof]
    expect(page.locator(f'#users li[data-user="{long}"]')).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # long names wrap
    clean(visit)


def test_a_filter_on_a_name_with_a_comma_follows_it_live(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    server = embedded_server
    for user, strategy in (("A,B", "S_AB"), ("A", "S_A"), ("B", "S_A")):
        put = httpx.put(
            f"{server.url}/users/{quote(user)}/strategies/{strategy}", json={"instruments": ["ACC"]}
        )
        assert put.status_code == 200, put.text
    visit = browse(server)
    page = open_console(visit, server, "?user=A%2CB")  # to /stream, a comma list: A or B
    place(server, "S_A", "ACC", "BUY", "not-theirs")
    place(server, "S_AB", "ACC", "BUY", "theirs")
    expect(row(page, "theirs")).to_be_visible(timeout=SOON)
    expect(page.locator("#connection")).to_have_text("live")
    assert tape(page) == ["theirs"]
    clean(visit)


def test_more_positions_than_a_page_are_cut_with_a_note(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    place(embedded_server, "STRATEGY_B", "MINDA", "BUY", "held")
    asked: list[str] = []

    def more(route: Route) -> None:  # the real page, as if the server held more than it
        asked.append(route.request.url)
        page = route.fetch().json()
        route.fulfill(json={**page, "next": "WyJhIiwiYiIsImMiXQ"})

    visit = browse(embedded_server)
    visit.page.route(re.compile(r"/positions\?"), more)
    page = open_console(visit, embedded_server)
    expect(page.locator('#positions tr[data-order-id="held"]')).to_be_visible()
    expect(page.locator("#positions-more")).to_contain_text("More than 1 open positions")
    assert asked and all("limit=1000" in url for url in asked)
    clean(visit)


def test_an_order_shows_in_the_tape_and_the_positions_as_it_commits(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    visit = browse(embedded_server)
    page = open_console(visit, embedded_server)
    place(embedded_server, "STRATEGY_B", "MINDA", "BUY", "live-buy")
    expect(row(page, "live-buy")).to_be_visible(timeout=SOON)
    expect(page.locator('#positions tr[data-order-id="live-buy"]')).to_be_visible(timeout=SOON)
    place(embedded_server, "STRATEGY_B", "MINDA", "SELL", "live-sell")
    expect(page.locator('#trades tr[data-order-id="live-sell"]')).to_be_visible(timeout=SOON)
    expect(page.locator('#positions tr[data-order-id="live-buy"]')).to_have_count(0)
    assert tape(page) == ["live-sell", "live-buy"]
    # A row opens (from the keyboard) to its decisions, per user, with the reasons.
    row(page, "live-buy").locator("summary").focus()
    page.keyboard.press("Enter")
    decisions = row(page, "live-buy").locator(".decisions")
    expect(decisions).to_contain_text("Holland Proctor: ACCEPTED")
    expect(decisions).to_contain_text("Kamryn Li: REJECTED INSTRUMENT_NOT_IN_STRATEGY")
    clean(visit)


def test_a_closed_trade_with_prices_shows_its_pnl(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    visit = browse(embedded_server)
    page = open_console(visit, embedded_server)
    expect(page.locator("#pnl")).to_contain_text("No closed trades.")
    place(embedded_server, "STRATEGY_B", "MINDA", "BUY", "pnl-buy", QUANTITY=10, PRICE="100")
    expect(row(page, "pnl-buy")).to_contain_text("BUY 10 MINDA", timeout=SOON)
    expect(row(page, "pnl-buy")).to_contain_text("@ 100")
    held = page.locator('#positions tr[data-order-id="pnl-buy"]')
    expect(held).to_contain_text("10", timeout=SOON)
    expect(held).to_contain_text("100")
    place(embedded_server, "STRATEGY_B", "MINDA", "SELL", "pnl-sell", PRICE="101.55")
    # (101.55 - 100) x 10, exact: the trade and the panel, per user and per strategy.
    expect(page.locator('#trades tr[data-order-id="pnl-sell"]')).to_contain_text(
        "+15.5", timeout=SOON
    )
    holland = page.locator('#pnl tr[data-user="Holland Proctor"]')
    expect(holland).to_contain_text("+15.5", timeout=SOON)
    expect(page.locator('#pnl tr[data-strategy="STRATEGY_B"]')).to_contain_text("+15.5")
    expect(page.locator("#pnl .pnl-total")).to_contain_text("1 won, 0 lost")
    # Opened again, the panel is read from GET /pnl.
    page.reload()
    expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
    expect(page.locator('#pnl tr[data-user="Holland Proctor"]')).to_contain_text("+15.5")
    clean(visit)


def test_the_ticket_posts_an_order_and_shows_the_answer(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    visit = browse(embedded_server)
    page = open_console(visit, embedded_server)
    ticket = page.locator("#ticket")
    ticket.get_by_label("Strategy").fill("STRATEGY_D")
    ticket.get_by_label("Instrument").fill("NTPC")
    ticket.get_by_label("BUY").check()
    ticket.get_by_label("ORDER_ID").fill("ticket-1")
    page.get_by_role("button", name="Send order").click()
    answer = page.locator("#answer")
    expect(answer).to_contain_text("ACCEPTED ticket-1")
    expect(answer).to_contain_text("Kamryn Li")
    logged = httpx.get(f"{embedded_server.url}/orders/ticket-1?min_sequence=1", timeout=10)
    assert logged.json()["accepted_for"] == ["Kamryn Li"]
    expect(row(page, "ticket-1")).to_be_visible(timeout=SOON)
    # Without an ORDER_ID the page makes one; the same side again is refused, and says why.
    page.get_by_role("button", name="Send order").click()
    expect(answer).to_contain_text(re.compile(r"REJECTED [0-9a-f-]{36} .*ALREADY_OPEN"))
    # An error answer shows the body's `error`.
    ticket.get_by_label("Instrument").fill("X" * 65)
    page.get_by_role("button", name="Send order").click()
    expect(answer).to_contain_text("Error 422")
    # The browser logs the refused request itself; the page logs nothing.
    assert len(visit.console_errors) == 1
    assert "422" in visit.console_errors[0]
    assert visit.page_errors == []
    assert visit.blocked == []


def test_a_filter_hides_other_users_and_is_kept_in_the_url(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    place(embedded_server, "STRATEGY_A", "GRASIM", "BUY", "holland-1")
    place(embedded_server, "STRATEGY_D", "NTPC", "BUY", "kamryn-1")
    visit = browse(embedded_server)
    page = open_console(visit, embedded_server)
    expect(page.locator("#tape > li")).to_have_count(2)
    page.locator("#filters").get_by_label("User").select_option("Kamryn Li")
    expect(page).to_have_url(re.compile(r"/\?user=Kamryn\+Li$"))
    expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
    expect(page.locator("#tape > li")).to_have_count(1)
    assert tape(page) == ["kamryn-1"]
    # Live too: Holland's order is committed before Kamryn's, so it would be shown first.
    place(embedded_server, "STRATEGY_A", "INFY", "BUY", "holland-2")
    place(embedded_server, "STRATEGY_D", "NTPC", "SELL", "kamryn-2")
    expect(row(page, "kamryn-2")).to_be_visible(timeout=SOON)
    assert tape(page) == ["kamryn-2", "kamryn-1"]
    expect(page.locator('#positions [data-user="Holland Proctor"]')).to_have_count(0)
    expect(page.locator('#users [data-user="Holland Proctor"]')).to_have_count(0)
    # The URL is the view: opened again, it shows the same.
    shared = browse(embedded_server)
    again = open_console(shared, embedded_server, "?user=Kamryn+Li")
    expect(again.locator("#filters").get_by_label("User")).to_have_value("Kamryn Li")
    expect(again.locator("#tape > li")).to_have_count(2)
    assert tape(again) == ["kamryn-2", "kamryn-1"]
    clean(visit)
    clean(shared)


def test_after_a_restart_the_tape_catches_up_without_gaps_or_repeats(
    embedded_server: Server, browse: Callable[[Server], Visit], profile_file: Path
) -> None:
    visit = browse(embedded_server)
    page = open_console(visit, embedded_server)
    expect(page.locator('#users [data-user="Ada Lovelace"]')).to_have_count(0)
    for n in range(3):
        place(embedded_server, "STRATEGY_B", "ACC", ["BUY", "SELL"][n % 2], f"before-{n}")
    expect(row(page, "before-2")).to_be_visible(timeout=SOON)
    # The page may not reconnect until the orders below are committed: it must catch up.
    held = {"blocked": True}
    resumed: list[str | None] = []

    def gate(route: Route) -> None:
        if held["blocked"]:
            route.abort()
        else:
            resumed.append(route.request.headers.get("last-event-id"))
            route.fallback()

    page.route(re.compile(r"/stream(\?|$)"), gate)
    embedded_server.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    # The restart imports a new user: `profile` events, which refresh the users panel.
    profile_file.write_text(
        json.dumps({**EXAMPLE_PROFILES, "Ada Lovelace": {"STRATEGY_B": ["ACC"]}})
    )
    embedded_server.start()
    after = [
        place(embedded_server, "STRATEGY_B", "ACC", ["BUY", "SELL"][n % 2], f"after-{n}")
        for n in range(1, 6)
    ]
    held["blocked"] = False
    expect(row(page, "after-5")).to_be_visible(timeout=LIVE)
    expect(page.locator("#connection")).to_have_text("live")
    top = after[-1]["sequence"]
    logged = httpx.get(
        f"{embedded_server.url}/orders?newest_first=true&min_sequence={top}", timeout=10
    ).json()["orders"]
    assert tape(page) == [order["order_id"] for order in logged]
    assert resumed and resumed[0] is not None
    expect(page.locator('#users [data-user="Ada Lovelace"]')).to_contain_text("STRATEGY_B: ACC")
    assert int(resumed[0]) < after[0]["sequence"]
    # Only the refused connections while the server was away, nothing from the page itself.
    assert all(NETWORK.match(message) for message in visit.console_errors), visit.console_errors
    assert visit.page_errors == []
    assert visit.blocked == []


def test_with_a_token_the_page_asks_for_it_then_works(
    make_server: Callable[[str], Server],
    server_env: dict[str, str],
    browse: Callable[[Server], Visit],
) -> None:
    server_env["LEDGER_API_TOKEN"] = TOKEN
    server = make_server("embedded")
    visit = browse(server)
    visit.page.goto(f"{server.url}/")
    page = visit.page
    expect(page.get_by_label("API token", exact=True)).to_be_visible(timeout=LIVE)
    expect(page.locator("#connection")).to_have_text("token needed")
    page.get_by_label("API token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
    expect(page.get_by_label("API token", exact=True)).to_be_hidden()
    body = {"STRATEGY": "STRATEGY_D", "INSTRUMENT": "NTPC", "POSITION": "BUY", "ORDER_ID": "t-1"}
    posted = httpx.post(
        f"{server.url}/order", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert posted.status_code == 200
    expect(row(page, "t-1")).to_be_visible(timeout=SOON)
    # Kept for the tab: a reload asks nothing.
    page.reload()
    expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
    expect(row(page, "t-1")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "console-token.png", full_page=True)
    assert all(TOKEN not in url for url in visit.requested)
    # The one refused read before the token was given, nothing else.
    assert len(visit.console_errors) == 1
    assert "401" in visit.console_errors[0]
    assert visit.page_errors == []
    assert visit.blocked == []
