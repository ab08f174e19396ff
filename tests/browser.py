"""Debian's headless Chromium driven by Selenium, for the browser tests. `.ci/run` installs the
packages (chromium, chromium-driver); elsewhere the tests skip with a reason where they are absent."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from conftest import require

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# No background networking or component updates: this machine's closed network refuses them.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--window-size=1280,900"]
HINT = "install Debian's chromium and chromium-driver packages"


@contextmanager
def chromium():
    """A Selenium driver of headless Chromium that keeps the pages' console messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(require(CHROMIUM, HINT))
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(require(CHROMEDRIVER, HINT))), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver, url: str, expected: str, timeout: float = 30) -> str:
    """The visible text of `url` once `expected` shows in it (single-page apps render late)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(
        lambda d: expected in d.find_element(By.TAG_NAME, "body").text)
    return driver.find_element(By.TAG_NAME, "body").text


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
