"""tests/web/browser.py: a headless Chromium driven over WebDriver (Debian's
chromium, chromium-driver and python3-selenium; the packaged driver, never
one Selenium Manager would download), with the waits, exact viewport sizes
and screenshots the console's browser test and scripts/console-screenshot
share."""
import os
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


class Browser:
    """url: the console's base URL (ends with /); shots: screenshot directory;
    fail(msg): called (and expected not to return) when a wait times out."""

    def __init__(self, url, shots, tmp, fail):
        self.url, self.shots, self.fail = url, shots, fail
        self.profile = tempfile.mkdtemp(prefix="chromium.", dir=tmp)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-quic", "--window-size=1280,800", "--user-data-dir=" + self.profile):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.size(1280, 800)
        self.console = []
        self.too_wide = []  # shots at a given width whose page was wider

    def size(self, w, h):
        """An exact viewport of w x h CSS pixels (a phone below 600)."""
        self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600})

    def wait(self, cond, what, seconds=15):
        try:
            return WebDriverWait(self.d, seconds, poll_frequency=0.1).until(lambda d: cond(d))
        except TimeoutException:
            self.shot("FAILED")
            self.fail("browser: %s not seen within %d s (page %s)" % (what, seconds, self.d.current_url))

    def css(self, sel):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def one(self, sel, what=None, seconds=15):
        return self.wait(lambda d: (d.find_elements(By.CSS_SELECTOR, sel) or [None])[0], what or sel, seconds)

    def attr(self, sel, name):
        """Attribute of the first match, read in the page (no stale element
        when the page redraws the list meanwhile); None without a match."""
        return self.d.execute_script("var e = document.querySelector(arguments[0]);"
                                     "return e ? e.getAttribute(arguments[1]) : null;", sel, name)

    def text(self, sel):
        """Visible text of every match, read in the page (no stale element)."""
        return self.d.execute_script("return Array.from(document.querySelectorAll(arguments[0]))"
                                     ".map(function (e) { return e.innerText; }).join(' ');", sel)

    def go(self, hash_, ready):
        """Loads the console at #hash_ and waits for the selector ready."""
        if self.d.current_url == self.url + hash_:
            self.d.refresh()  # same URL: get() would only compare hashes and not load
        else:
            self.d.get(self.url + hash_)
        return self.one(ready)

    def login(self, token):
        tok = self.one("#token", "the login form")
        tok.clear()
        tok.send_keys(token + Keys.ENTER)

    def shot(self, name, w=None, h=None):
        """Saves <shots>/<name>.png, at w x h when given (then back to 1280x800)."""
        if w:
            self.size(w, h)
            time.sleep(0.3)  # layout after the resize
        p = os.path.join(self.shots, name + ".png")
        self.d.save_screenshot(p)
        if w:
            wide = self.d.execute_script("return document.documentElement.scrollWidth")
            if wide > w:  # the page itself scrolls sideways (tables scroll in their own box)
                self.too_wide.append("%s: %d px wide at %d" % (name, wide, w))
            self.size(1280, 800)
        return p

    def drain_log(self):
        self.console += self.d.get_log("browser")

    def quit(self):
        try:
            self.drain_log()
        finally:
            self.d.quit()
