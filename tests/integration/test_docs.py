"""The docs page in process: same-origin assets, open without the token, the document not."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from starlette.testclient import TestClient

from tests.support import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def references(html: str) -> list[str]:
    """Every src and href in the page."""
    return re.findall(r'(?:src|href)="([^"]*)"', html)


def test_page_and_its_assets_load_without_the_token(locked: TestClient) -> None:
    page = locked.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = references(page.text)
    assert {"docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css"} <= set(refs)
    for ref in refs:
        url = urljoin(str(page.url), ref)
        assert urlsplit(url).netloc == "testserver", f"{ref} leaves the origin"
        asset = locked.get(url)
        assert asset.status_code == 200, ref
        assert asset.content


def test_the_document_still_needs_the_token(locked: TestClient) -> None:
    assert locked.get("/openapi.json").status_code == 401
    document = locked.get("/openapi.json", headers=BEARER)
    assert document.status_code == 200
    assert "/order" in document.json()["paths"]


def test_trailing_slash_redirects_to_the_page(locked: TestClient) -> None:
    moved = locked.get("/docs/", follow_redirects=False)
    assert moved.status_code in (307, 308)
    assert urlsplit(moved.headers["location"]).path == "/docs"


def test_open_asset_prefix_reaches_nothing_else(locked: TestClient) -> None:
    # The path reaches the server as "/docs/assets/../openapi.json", past the open prefix.
    escaped = locked.get("/docs/assets/%2e%2e/openapi.json")
    assert escaped.status_code == 404
    assert "paths" not in escaped.text
    assert locked.get("/docs/assets/missing.js").status_code == 404
