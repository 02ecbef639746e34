"""The docs page in a real browser with the network cut off at the server's origin."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page

from tests.e2e.browser import ARTIFACTS, Visit
from tests.support import Server

TOKEN = "docs-s3cret"


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
