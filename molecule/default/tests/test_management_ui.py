"""The management UI as an operator uses it: headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium; tools/ensure-browser.sh installs them) opens it over HTTPS from the controller, trusting the deployment
CA through a fresh NSS database that holds nothing else, logs in as the administrator and finds the topology's
queues with their consumers; the login form refuses a wrong password and guest. A screenshot of the page is kept in
.ansible/browser-screenshots/ when a test fails."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
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


@contextlib.contextmanager
def _basic_challenges_cancelled(driver: WebDriver) -> Iterator[list[str]]:
    """Cancel every HTTP Basic challenge the page meets, as an operator dismissing the browser's credentials prompt
    would, so that the page sees the 401 itself; yields the URLs whose challenge was cancelled.

    RabbitMQ answers a refused login with `WWW-Authenticate: Basic`, and Chromium then opens a prompt that headless
    Chromium can neither show nor dismiss. Chromium has no switch to turn the Basic scheme off (only the
    AuthSchemes policy, read from system-wide files), and Selenium's BiDi authentication handler stalls here: the
    UI logs in with a synchronous XMLHttpRequest, so the click that starts it does not return until the challenge
    is answered, and chromedriver answers BiDi commands only after it. The DevTools protocol's Fetch domain,
    spoken to the page's target on the browser's own loopback debugging port, answers it from outside.
    """
    debugger = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
    with urllib.request.urlopen(f"http://{debugger}/json/list", timeout=WAIT_SECONDS) as response:
        page = next(t for t in json.load(response) if t["type"] == "page")
    devtools = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=WAIT_SECONDS, suppress_origin=True)
    devtools.settimeout(None)  # the answering thread waits for events until the connection is closed
    intercept = {"handleAuthRequests": True, "patterns": [{"urlPattern": "*/api/*"}]}
    devtools.send(json.dumps({"id": 1, "method": "Fetch.enable", "params": intercept}))
    cancelled: list[str] = []

    def answer() -> None:
        """Let every paused API request go on, and cancel its Basic challenge if it meets one."""
        replies = itertools.count(2)
        while True:
            try:
                message = devtools.recv()
            except (websocket.WebSocketException, OSError):
                message = ""
            if not message:
                return  # closed when the test is done
            event = json.loads(message)
            params = event.get("params", {})
            if event.get("method") == "Fetch.requestPaused":
                reply = {"method": "Fetch.continueRequest", "params": {"requestId": params["requestId"]}}
            elif event.get("method") == "Fetch.authRequired":
                cancelled.append(params["request"]["url"])
                reply = {"method": "Fetch.continueWithAuth", "params": {
                    "requestId": params["requestId"], "authChallengeResponse": {"response": "CancelAuth"}}}  # fmt: skip
            else:
                continue
            devtools.send(json.dumps({"id": next(replies), **reply}))

    answering = threading.Thread(target=answer, daemon=True)
    answering.start()
    try:
        yield cancelled
    finally:
        devtools.close()
        answering.join(timeout=WAIT_SECONDS)


@pytest.mark.parametrize("who", ["wrong-password", "guest"])
def test_the_login_form_refuses_a_wrong_password_and_guest(
    host: Any, browser: WebDriver, ui_url: str, who: str
) -> None:
    user, password = admin_credentials(host)
    credentials = {"wrong-password": (user, password + "-wrong"), "guest": ("guest", "guest")}
    with _basic_challenges_cancelled(browser) as cancelled:
        _log_in(browser, ui_url, *credentials[who])
        WebDriverWait(browser, WAIT_SECONDS).until(
            lambda d: "Login failed" in d.find_element(By.ID, "login-status").text
        )
        # The broker's refusal, not the page's: its answer to the login was a 401 with a Basic challenge.
        assert cancelled == [f"{ui_url}api/whoami"]
        browser.get(f"{ui_url}#/queues")
        WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.find_elements(By.NAME, "username"))
        assert not browser.find_elements(By.ID, "logout")
        assert not any(browser.find_elements(By.LINK_TEXT, queue) for queue in QUEUES)


def test_without_the_deployment_ca_the_browser_refuses_the_certificate(tmp_path: Path, ui_url: str) -> None:
    driver = _browser(tmp_path)
    try:
        driver.get(ui_url)
        # Chromium's interstitial, instead of the login form.
        assert not driver.find_elements(By.NAME, "username")
        assert "ERR_CERT_AUTHORITY_INVALID" in driver.page_source
    finally:
        driver.quit()
