"""Chromium through Playwright, for tests that must see pages as a person's browser does.

Debian's Chromium is used as installed; Playwright never downloads a browser here. Without it
these tests skip, unless RELISTEN_REQUIRE_SERVICES=1 says a missing browser is a failure
(CI images that promise a browser must not go green by skipping).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_WRAPPER = Path("/usr/bin/chromium")
# The real binary skips Debian's wrapper script (which prints a harmless shell warning).
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",  # Playwright's default too; the sandbox cannot start as root in containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _unavailable(reason: str) -> None:
    if os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (RELISTEN_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    if not CHROMIUM_WRAPPER.exists():
        _unavailable("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    return CHROMIUM_BINARY if CHROMIUM_BINARY.exists() else CHROMIUM_WRAPPER


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API runs an asyncio loop in the test thread, and Django refuses ORM
    calls from a thread with a running loop. The test's own ORM calls are plain synchronous
    code, so the guard is lifted for browser tests only (not for the rest of the suite)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(
    chromium_executable: Path,
    transactional_db: None,
    allow_orm_beside_playwright: None,
) -> Iterator[Browser]:
    # Depending on the database fixtures makes pytest tear them down after the browser, so the
    # final clean-up runs once Playwright's event loop has stopped.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python package 'playwright' is missing (pip install -e '.[dev]')")
        raise  # unreachable: _unavailable always raises; keeps type checkers certain
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_executable), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
