"""Headless Chromium for tests (Debian's chromium + chromium-driver, selenium from PyPI).

Skips with the reason where no browser is installed (`.ci/run` installs it). Software WebGL
(SwiftShader) renders three.js here.
"""

from __future__ import annotations

import shutil
import time

import pytest


def chromium(width: int = 1280, height: int = 900, downloads: str | None = None):
    """A headless Chromium WebDriver; skip when the browser, its driver or selenium is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
                 "--use-angle=swiftshader", "--allow-file-access-from-files", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads:
        options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                                  "download.prompt_for_download": False})
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    if downloads:  # headless Chromium needs downloads allowed explicitly
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    return driver


def wait_for(driver, script: str, timeout: float = 60.0):
    """Poll `return <script>` until it is not null; fail with the browser's console on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(f"return {script}")
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{script} stayed null for {timeout} s; console: {console_messages(driver)}")


def console_messages(driver, level: str | None = None) -> list[dict]:
    """Browser console entries since the last call (optionally only `level`, e.g. SEVERE)."""
    entries = driver.get_log("browser")
    return [e for e in entries if level is None or e["level"] == level]
