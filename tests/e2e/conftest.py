"""Pages in a real browser (Debian's chromium), the network cut off at the server's origin."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Error, Route, sync_playwright

from tests.e2e.browser import CHROMIUM_ARGS, Visit, origin
from tests.support import Server


@pytest.fixture
def browse() -> Iterator[Callable[[Server], Visit]]:
    """Open pages in Debian's chromium; every request off the server's origin is aborted."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)

        def open_for(server: Server) -> Visit:
            context = browser.new_context()
            visit = Visit(context.new_page(), context)
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
