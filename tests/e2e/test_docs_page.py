"""The docs page in a real browser with the network cut off at the server's origin."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, Route, sync_playwright

from tests.support import ROOT, Server

ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "docs-s3cret"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def origin(url: str) -> str:
    """scheme://host:port of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Visit:
    """A browser page confined to one origin, and what it tried and logged."""

    page: Page
    requested: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture
def browse() -> Iterator[Callable[[Server], Visit]]:
    """Open pages in Debian's chromium; every request off the server's origin is aborted."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)

        def open_for(server: Server) -> Visit:
            context = browser.new_context()
            visit = Visit(context.new_page())
            allowed = origin(server.url)

            def confine(route: Route) -> None:
                url = route.request.url
                visit.requested.append(url)
                if origin(url) == allowed:
                    route.continue_()
                else:
                    visit.blocked.append(url)
                    route.abort()

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    visit.console_errors.append(message.text)

            def page_error(error: Error) -> None:
                visit.page_errors.append(str(error))

            context.route("**/*", confine)
            visit.page.on("console", console)
            visit.page.on("pageerror", page_error)
            return visit

        try:
            yield open_for
        finally:
            browser.close()


def operations(page: Page) -> set[str]:
    """The paths of the operations Swagger UI rendered."""
    page.wait_for_selector(".opblock")
    paths: list[str] = page.locator(".opblock-summary-path").evaluate_all(
        "nodes => nodes.map(node => node.dataset.path)"
    )
    return set(paths)


def test_docs_render_from_the_server_alone(
    embedded_server: Server, browse: Callable[[Server], Visit]
) -> None:
    visit = browse(embedded_server)
    visit.page.goto(f"{embedded_server.url}/docs")
    assert {"/order", "/positions"} <= operations(visit.page)
    visit.page.wait_for_load_state("networkidle")  # late requests (the favicon) count too
    ARTIFACTS.mkdir(exist_ok=True)
    visit.page.screenshot(path=ARTIFACTS / "docs-page.png", full_page=True)
    assert visit.blocked == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in visit.requested)
    assert any(url.endswith("/openapi.json") for url in visit.requested)
    assert visit.console_errors == []
    assert visit.page_errors == []


def test_docs_with_a_token_load_the_document_once_it_is_given(
    make_server: Callable[[str], Server],
    server_env: dict[str, str],
    browse: Callable[[Server], Visit],
) -> None:
    server_env["LEDGER_API_TOKEN"] = TOKEN
    server = make_server("embedded")
    visit = browse(server)
    with visit.page.expect_response(lambda r: r.url.endswith("/openapi.json")) as first:
        visit.page.goto(f"{server.url}/docs")
    # Without the token the page and its assets load, and only the document is refused.
    assert first.value.status == 401
    visit.page.wait_for_load_state("networkidle")
    assert visit.page.locator(".opblock").count() == 0
    assert len(visit.console_errors) == 1
    assert "401" in visit.console_errors[0]
    visit.page.get_by_label("API token").fill(TOKEN)
    visit.page.get_by_role("button", name="Use token").click()
    assert {"/order", "/positions"} <= operations(visit.page)
    visit.page.wait_for_load_state("networkidle")
    ARTIFACTS.mkdir(exist_ok=True)
    visit.page.screenshot(path=ARTIFACTS / "docs-page-token.png", full_page=True)
    assert visit.blocked == []
    assert len(visit.console_errors) == 1
    assert visit.page_errors == []
