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


def test_trailing_slash_is_not_the_page_and_no_redirect(locked: TestClient) -> None:
    # A redirect's Location would echo the client's Host header: a path is a page or not.
    closed = locked.get("/docs/", follow_redirects=False)
    assert closed.status_code == 401
    missing = locked.get("/docs/", headers=BEARER, follow_redirects=False)
    assert missing.status_code == 404
    assert "location" not in missing.headers


def test_open_asset_prefix_reaches_nothing_else(locked: TestClient) -> None:
    # The path reaches the server as "/docs/assets/../openapi.json", past the open prefix.
    escaped = locked.get("/docs/assets/%2e%2e/openapi.json")
    assert escaped.status_code == 404
    assert "paths" not in escaped.text
    assert locked.get("/docs/assets/missing.js").status_code == 404
