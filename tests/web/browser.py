"""How the browser tests and scripts/screenshots.py launch Debian's Chromium: Playwright
cannot download its own browsers here, so the system one runs by its path."""

from __future__ import annotations

import os
import shutil

from playwright.async_api import Browser, Playwright

CHROMIUM = os.environ.get("SLOTEASE_CHROMIUM") or shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch_chromium(playwright: Playwright) -> Browser:
    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed; `make browser` installs it as root")
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
