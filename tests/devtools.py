"""Full-page screenshots in headless Chromium, through the DevTools protocol on a pipe.

``chromium --remote-debugging-pipe`` reads protocol commands from fd 3 and writes replies
and events to fd 4, each a JSON message ending in NUL: no port to pick, nothing listening,
no websocket library. What affects the pixels is pinned here, so that two runs, or two
machines with the same Chromium and fonts-dejavu-core, give the same image:

- the viewport (a width in CSS px, device scale factor 1, not a mobile device), light
  colour scheme, reduced motion, no scrollbars, sRGB, grey-scale text antialiasing;
- the fonts: a fontconfig file that sees only DejaVu (Debian's default fonts, which
  Chromium picks for ``system-ui``, ``sans-serif`` and ``monospace`` anyway), so fonts
  installed on a developer's machine or a user's fontconfig settings change nothing;
- a fresh profile, UTC and an English locale.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <dir>{fonts}</dir>
  <cachedir>{cache}</cachedir>
  <!-- a family fontconfig does not know, system-ui included, falls back to DejaVu Sans -->
  <match target="pattern">
    <edit name="family" mode="append_last"><string>DejaVu Sans</string></edit>
  </match>
  {aliases}
  <match target="font">
    <edit name="antialias" mode="assign"><bool>true</bool></edit>
    <edit name="hinting" mode="assign"><bool>true</bool></edit>
    <edit name="hintstyle" mode="assign"><const>{hintstyle}</const></edit>
    <edit name="rgba" mode="assign"><const>none</const></edit>
  </match>
</fontconfig>
"""

GENERIC = {"sans-serif": "DejaVu Sans", "serif": "DejaVu Serif", "monospace": "DejaVu Sans Mono"}
ALIASES = "\n  ".join(
    f'<alias binding="same"><family>{generic}</family><prefer><family>{family}</family>'
    "</prefer></alias>" for generic, family in GENERIC.items())

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
    "--force-device-scale-factor=1", "--force-color-profile=srgb", "--disable-lcd-text",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--lang=en-US",
]


class Browser:
    """One headless Chromium, driven over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, folder: Path, hintstyle: str = "hintslight") -> None:
        """Start Chromium with its profile and fontconfig files in ``folder``.

        :param hintstyle: fontconfig's glyph hinting; another value than the default
            renders text as another machine might, to measure what the comparison tolerates
        """
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "fonts.conf"
        conf.write_text(FONTS_CONF.format(fonts=DEJAVU, cache=folder / "fontconfig",
                                         aliases=ALIASES, hintstyle=hintstyle), encoding="utf-8")
        env = dict(os.environ, FONTCONFIG_FILE=str(conf), TZ="UTC", LANG="C.UTF-8")
        env.pop("FONTCONFIG_PATH", None)
        commands_in, self._commands = os.pipe()
        self._replies, replies_out = os.pipe()

        def pipes_on_3_and_4() -> None:
            # dup first: the pipes may already be fds 3 and 4, and dup2 onto itself would
            # leave them close-on-exec
            fd_in, fd_out = os.dup(commands_in), os.dup(replies_out)
            os.dup2(fd_in, 3)
            os.dup2(fd_out, 4)

        self.log = folder / "chromium.log"
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={folder / 'profile'}",
                 "--remote-debugging-pipe", "about:blank"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                close_fds=False, preexec_fn=pipes_on_3_and_4)
        os.close(commands_in)
        os.close(replies_out)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe; see " + str(self.log))
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def wait_for(self, event: str, session: str) -> None:
        """Return once ``event`` has arrived for ``session``."""
        def wanted(e: dict[str, Any]) -> bool:
            return e.get("method") == event and e.get("sessionId") == session

        for i, e in enumerate(self._events):
            if wanted(e):
                del self._events[i]
                return
        while not wanted(e := self._read()):
            self._events.append(e)

    def screenshot(self, page: Path, width: int) -> bytes:
        """Return a PNG of the whole of ``page`` laid out ``width`` CSS px wide."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            self.send("Page.enable", session)
            self.send("Emulation.setEmulatedMedia", session, media="screen", features=[
                {"name": "prefers-color-scheme", "value": "light"},
                {"name": "prefers-reduced-motion", "value": "reduce"}])
            self._viewport(session, width, 800)
            self.send("Page.navigate", session, url=page.as_uri())
            self.wait_for("Page.loadEventFired", session)
            self.send("Runtime.evaluate", session, awaitPromise=True,
                      expression="document.fonts.ready.then(() => 1)")
            # the viewport as tall as the page, so that one capture holds all of it
            size = self.send("Page.getLayoutMetrics", session)["cssContentSize"]
            self._viewport(session, width, int(size["height"] + 0.5))
            shot = self.send("Page.captureScreenshot", session, format="png")
            return base64.b64decode(shot["data"])
        finally:
            self.send("Target.closeTarget", targetId=target)

    def _viewport(self, session: str, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._replies)
