"""The management UI as an operator uses it: headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium; tools/ensure-browser.sh installs them) opens it over HTTPS from the controller, trusting the deployment
CA through a fresh NSS database that holds nothing else, logs in as the administrator and finds the topology's
queues with their consumers; the UI's API refuses a wrong password and guest. A screenshot of the page is kept in
.ansible/browser-screenshots/ when a test fails."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import admin_credentials
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from test_tls import CA_FILE, REPO, container_address

# Selenium drives the packaged browser and driver; its manager must never download either.
os.environ.setdefault("SE_OFFLINE", "true")
SCREENSHOTS = REPO / ".ansible" / "browser-screenshots"
QUEUES = ("order.events", "jobs", "whatsapp.notifications")
WAIT_SECONDS = 30

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver") and shutil.which("certutil")),
    reason="Debian's chromium, chromium-driver and libnss3-tools are not installed (tools/ensure-browser.sh)",
)


def _browser(home: Path) -> WebDriver:
    """Chromium with its own HOME, so its only added trust is what `home`'s NSS database holds."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={home / 'profile'}")
    service = Service(shutil.which("chromedriver") or "chromedriver", env={**os.environ, "HOME": str(home)})
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDriver]:
    """A browser that trusts the deployment CA; on failure the last page is kept as a screenshot."""
    nssdb = tmp_path / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "Warren deployment CA", "-t", "C,,", "-i", str(CA_FILE)],
        check=True,
        timeout=30,
    )
    driver = _browser(tmp_path)
    failed_before = request.session.testsfailed
    try:
        yield driver
    finally:
        # The call's failure is counted before fixtures are torn down.
        if request.session.testsfailed > failed_before:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            path = SCREENSHOTS / f"{request.node.name}.png"
            driver.save_screenshot(str(path))
            print(f"screenshot of the failed page: {path}")
        driver.quit()


@pytest.fixture(scope="module")
def ui_url(host: Any) -> str:
    return f"https://{container_address(host.backend.get_hostname())}:15671/"


def _log_in(driver: WebDriver, url: str, user: str, password: str) -> None:
    driver.get(url)
    wait = WebDriverWait(driver, WAIT_SECONDS)
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def _logged_in(driver: WebDriver) -> bool:
    """Whether the UI shows its logged-in header (the user and "Log out"), within the wait."""
    try:
        WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.find_elements(By.ID, "logout"))
    except TimeoutException:
        return False
    return True


def _consumers(driver: WebDriver) -> int:
    """The Consumers figure of the queue page's overview table."""
    cells = driver.find_elements(By.XPATH, "//th[normalize-space()='Consumers']/following-sibling::td[1]")
    return int(cells[0].text) if cells and cells[0].text.strip().isdigit() else 0


def test_the_admin_sees_the_queues_with_their_consumers(host: Any, browser: WebDriver, ui_url: str) -> None:
    user, password = admin_credentials(host)
    _log_in(browser, ui_url, user, password)
    assert _logged_in(browser), browser.page_source[:2000]
    browser.get(f"{ui_url}#/queues")
    # The UI redraws its tables every few seconds: an element found just before a redraw goes stale, so every
    # wait here looks again rather than fail on a stale one.
    wait = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: all(d.find_elements(By.LINK_TEXT, queue) for queue in QUEUES))
    for queue in QUEUES:
        wait.until(lambda d, q=queue: d.find_element(By.LINK_TEXT, q).click() or True)
        wait.until(
            lambda d, q=queue: (
                d.find_elements(By.TAG_NAME, "h1")
                and d.find_element(By.TAG_NAME, "h1").text == f"Queue {q}"
                and _consumers(d) >= 1
            )
        )
        browser.back()
        wait.until(lambda d: d.find_elements(By.LINK_TEXT, QUEUES[-1]))


# The UI's login form asks /api/whoami with the typed credentials. On a refusal RabbitMQ answers 401 with a
# Basic challenge, which makes Chromium open its own credentials prompt, one headless Chromium cannot dismiss: the
# page asks the same endpoint itself with credentials "omit" (no prompt, the Authorization header still sent).
WHOAMI = """const done = arguments[1];
fetch("api/whoami", {credentials: "omit", headers: {authorization: "Basic " + arguments[0]}})
  .then(response => done(response.status), error => done(String(error)));"""


@pytest.mark.parametrize("who", ["admin", "wrong-password", "guest"])
def test_the_ui_api_admits_admin_and_refuses_a_wrong_password_and_guest(
    host: Any, browser: WebDriver, ui_url: str, who: str
) -> None:
    user, password = admin_credentials(host)
    credentials = {
        "admin": (user, password),
        "wrong-password": (user, password + "-wrong"),
        "guest": ("guest", "guest"),
    }
    browser.set_script_timeout(WAIT_SECONDS)
    browser.get(ui_url)
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.find_elements(By.NAME, "username"))
    token = base64.b64encode(":".join(credentials[who]).encode()).decode()
    assert browser.execute_async_script(WHOAMI, token) == (200 if who == "admin" else 401)


def test_without_the_deployment_ca_the_browser_refuses_the_certificate(tmp_path: Path, ui_url: str) -> None:
    driver = _browser(tmp_path)
    try:
        driver.get(ui_url)
        # Chromium's interstitial, instead of the login form.
        assert not driver.find_elements(By.NAME, "username")
        assert "ERR_CERT_AUTHORITY_INVALID" in driver.page_source
    finally:
        driver.quit()
