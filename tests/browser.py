"""Headless Chromium for tests that look at a page as a person would: open it, click, screenshot, read the console.

Chromium is driven over the Chrome DevTools Protocol (CDP) on a pipe (``--remote-debugging-pipe``): commands go
in on the browser's file descriptor 3 and answers and events come out on its descriptor 4, as NUL-terminated JSON.
So no TCP port, no WebDriver (chromedriver) and no Python package beyond the standard library; Pillow (already a
dependency through matplotlib) only judges screenshots. The protocol's domains used here (Target, Page, Runtime,
Log, Network, DOM, Input, Emulation) are its stable ones.

Every frame is watched, also iframes that Chromium runs in a process of their own: console calls
(``console.error``…), uncaught exceptions and the browser's own log (failed loads, security and intervention
messages) all land in :attr:`Browser.console`, and every URL requested in :attr:`Browser.requests`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Headless, as root (no sandbox), without a GPU, and without any connection of Chromium's own (updates, sync,
# field trials, QUIC...): the network here is closed, and refused connections would be logged as errors.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
    "--hide-scrollbars",
)

# Schemes a page may load without any network.
LOCAL_SCHEMES = ("data:", "file:", "blob:", "about:", "chrome:", "chrome-error:", "devtools:")


def find_chromium() -> str | None:
    """The Chromium executable: $SYNTHPROXY_CHROMIUM if set, else the first of CHROMIUM_NAMES on PATH."""
    names = [os.environ["SYNTHPROXY_CHROMIUM"]] if os.environ.get("SYNTHPROXY_CHROMIUM") else CHROMIUM_NAMES
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    """Chromium did not start, answer, or do what was asked in time."""


class CDPError(BrowserError):
    def __init__(self, method: str, error: dict):
        super().__init__(f"{method}: {error.get('message')} {error.get('data', '')}".strip())
        self.method = method
        self.error = error


@dataclass(frozen=True)
class ConsoleEntry:
    """One line of the browser console: a console.* call, an uncaught exception, or the browser's own log."""

    source: str  # "console", "exception", or the Log domain's source ("network", "security", "intervention", ...)
    level: str  # "error", "warning", "info", "verbose"
    text: str
    url: str = ""

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    def __str__(self) -> str:
        where = f" ({shorten(self.url)})" if self.url else ""
        return f"[{self.level}] {self.source}: {self.text}{where}"


def shorten(url: str, keep: int = 80) -> str:
    """A URL fit for a message: data URIs are megabytes long."""
    if len(url) <= keep:
        return url
    return f"{url[:keep]}… ({len(url)} chars)"


_CONSOLE_LEVELS = {"error": "error", "assert": "error", "warning": "warning", "debug": "verbose"}


def _console_text(args: list[dict]) -> str:
    parts = []
    for arg in args:
        if "value" in arg:
            parts.append(str(arg["value"]))
        else:
            parts.append(str(arg.get("description") or arg.get("unserializableValue") or arg.get("type")))
    return " ".join(parts)


class Browser:
    """One headless Chromium with one tab, driven over CDP on a pipe. Use as a context manager.

    ``timeout`` (seconds) bounds every command and wait unless one is given to it.
    """

    def __init__(self, executable: str | None = None, *, width: int = 1600, height: int = 1000,
                 timeout: float = 30.0, extra_flags: tuple[str, ...] = ()):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH)")
        self.width, self.height, self.timeout = width, height, timeout
        self.extra_flags = extra_flags
        self.console: list[ConsoleEntry] = []
        self.requests: list[str] = []
        self.failed_requests: list[tuple[str, str]] = []  # (url, error text)
        self._proc: subprocess.Popen | None = None
        self._tmp: Path | None = None
        self._to_browser = self._from_browser = -1
        self._buffer = bytearray()
        self._scanned = 0
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self._request_urls: dict[tuple[str | None, str], str] = {}
        self._contexts: dict[str, tuple[str | None, int]] = {}  # frame id -> (session, default JS context id)
        self._new_sessions: list[str] = []
        self._servicing = False
        self._loaded = False
        self.crashed = False
        self.page: str = ""  # the tab's CDP session id

    # ----------------------------------------------------------------------------------------------- lifetime
    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def log_path(self) -> Path | None:
        return self._tmp / "chromium.log" if self._tmp else None

    def log_tail(self, lines: int = 20) -> str:
        """The end of Chromium's own stdout/stderr, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="synthproxy-chromium-"))
        profile = self._tmp / "profile"
        profile.mkdir()
        to_r, self._to_browser = os.pipe()  # we write commands, Chromium reads them on its fd 3
        self._from_browser, from_w = os.pipe()  # Chromium writes answers on its fd 4, we read them
        # Descriptors >= 10 so that bash's "3<&N 4>&M" cannot overwrite one with the other (dash takes only 0-9).
        child_in = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_r)
        os.close(from_w)
        argv = [self.executable, *CHROMIUM_FLAGS, *self.extra_flags, "--remote-debugging-pipe",
                f"--user-data-dir={profile}", f"--window-size={self.width},{self.height}", "about:blank"]
        # bash puts the pipes on fds 3 and 4 and then becomes Chromium (no preexec_fn: safe with threads).
        wiring = f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(["bash", "-c", wiring, *argv], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, pass_fds=(child_in, child_out),
                                          start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        try:
            self._open_tab()
        except BaseException:
            self.close()
            raise

    def _open_tab(self) -> None:
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.page = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable", "Inspector.enable"):
            self.call(method, session=self.page)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
                  session=self.page)
        self.call("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                  session=self.page)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(BrowserError, OSError):
                    self.call("Browser.close", timeout=5)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            # Chromium's helper processes (renderers, GPU, zygote) are in the session started for it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                os.close(fd)
        self._to_browser = self._from_browser = -1
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ---------------------------------------------------------------------------------------------- transport
    def call(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one CDP command (to the browser, or to a target's session) and return its result."""
        if self._to_browser < 0:
            raise BrowserError("browser not started")
        self._next_id += 1
        message_id = self._next_id
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = memoryview(json.dumps(message).encode() + b"\0")
        while data:
            data = data[os.write(self._to_browser, data):]
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while message_id not in self._answers:
            if not self._read(deadline):
                raise BrowserError(f"{method}: no answer from Chromium within {timeout:.0f}s\n{self.log_tail()}")
        answer = self._answers.pop(message_id)
        self._service()
        if "error" in answer:
            raise CDPError(method, answer["error"])
        return answer.get("result", {})

    def _read(self, deadline: float) -> bool:
        """Take in what Chromium wrote, waiting until the deadline at most; False if nothing came."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self._from_browser], [], [], remaining)
        if not ready:
            return False
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
            raise BrowserError(f"Chromium closed its DevTools pipe (exit code {self._proc and self._proc.poll()})"
                               f"\n{self.log_tail()}")
        self._buffer += chunk
        while (end := self._buffer.find(b"\0", self._scanned)) >= 0:
            message = json.loads(self._buffer[:end])
            del self._buffer[: end + 1]
            self._scanned = 0
            if "id" in message:
                self._answers[message["id"]] = message
            else:
                self._on_event(message["method"], message.get("params", {}), message.get("sessionId"))
        self._scanned = len(self._buffer)
        return True

    def _on_event(self, method: str, params: dict, session: str | None) -> None:
        if method == "Runtime.consoleAPICalled":
            frames = (params.get("stackTrace") or {}).get("callFrames") or [{}]
            self.console.append(ConsoleEntry("console", _CONSOLE_LEVELS.get(params["type"], "info"),
                                             _console_text(params.get("args", [])), frames[0].get("url", "")))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text", "")
            self.console.append(ConsoleEntry("exception", "error", text, details.get("url", "")))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(ConsoleEntry(entry.get("source", "other"), entry.get("level", "info"),
                                             entry.get("text", ""), entry.get("url", "")))
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            self.requests.append(url)
            self._request_urls[(session, params["requestId"])] = url
        elif method == "Network.loadingFailed":
            url = self._request_urls.get((session, params["requestId"]), "?")
            self.failed_requests.append((url, params.get("errorText", "")))
        elif method == "Runtime.executionContextCreated":
            context = params["context"]
            aux = context.get("auxData") or {}
            if aux.get("isDefault") and aux.get("frameId"):
                self._contexts[aux["frameId"]] = (session, context["id"])
        elif method == "Runtime.executionContextDestroyed":
            gone = (session, params["executionContextId"])
            self._contexts = {f: c for f, c in self._contexts.items() if c != gone}
        elif method == "Runtime.executionContextsCleared":
            self._contexts = {f: c for f, c in self._contexts.items() if c[0] != session}
        elif method == "Target.attachedToTarget":
            self._new_sessions.append(params["sessionId"])
        elif method == "Target.detachedFromTarget":
            self._contexts = {f: c for f, c in self._contexts.items() if c[0] != params["sessionId"]}
        elif method == "Page.loadEventFired" and session == self.page:
            self._loaded = True
        elif method in ("Inspector.targetCrashed", "Target.targetCrashed"):
            self.crashed = True
            self.console.append(ConsoleEntry("browser", "error", f"a page or frame crashed ({method})"))

    def _service(self) -> None:
        """Set up the sessions of targets attached meanwhile (out-of-process iframes, workers), then let them run."""
        if self._servicing:
            return
        self._servicing = True
        try:
            while self._new_sessions:
                session = self._new_sessions.pop(0)
                auto_attach = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}
                steps = (("Runtime.enable", None), ("Log.enable", None), ("Network.enable", None),
                         ("Target.setAutoAttach", auto_attach), ("Runtime.runIfWaitingForDebugger", None))
                for method, params in steps:
                    # A domain the target does not have (a worker has no Network, say), or the target is gone.
                    with contextlib.suppress(CDPError):
                        self.call(method, params, session=session)
        finally:
            self._servicing = False

    # ------------------------------------------------------------------------------------------------- pages
    def wait_for(self, predicate: Callable[[], Any], *, what: str, timeout: float | None = None,
                 interval: float = 0.05) -> Any:
        """Poll predicate (taking in Chromium's events meanwhile) until it returns something truthy; return that."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.crashed:
                raise BrowserError(f"the page crashed while waiting for {what}\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise BrowserError(f"timed out after {timeout:.0f}s waiting for {what}")
            self._read(min(deadline, time.monotonic() + interval))
            self._service()

    def goto(self, url: str, *, timeout: float | None = None) -> None:
        """Open url in the tab and wait for its load event."""
        self._loaded = False
        result = self.call("Page.navigate", {"url": url}, session=self.page)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {shorten(url)}: {result['errorText']}")
        self.wait_for(lambda: self._loaded, what=f"the load event of {shorten(url)}", timeout=timeout)

    def evaluate(self, expression: str, *, frame: str | None = None, timeout: float | None = None) -> Any:
        """Run JavaScript in the tab's main frame (or in the frame of that id) and return its (JSON) value.

        A promise is awaited. The page's globals are in scope; an exception is raised as BrowserError.
        """
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        session = self.page
        if frame is not None:
            if frame not in self._contexts:
                raise BrowserError(f"frame {frame} has no JavaScript context (not loaded, or gone)")
            session, params["contextId"] = self._contexts[frame]
        result = self.call("Runtime.evaluate", params, session=session, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript failed: {text}")
        return result["result"].get("value")

    def frames(self) -> dict[str, str]:
        """The frames that have a JavaScript context now: {frame id: URL}."""
        found = {}
        for frame in list(self._contexts):
            with contextlib.suppress(BrowserError):  # detached meanwhile
                found[frame] = self.evaluate("location.href", frame=frame, timeout=5)
        return found

    def frame_of(self, element: str) -> str:
        """The id of the frame shown by the <iframe> element that the JavaScript expression evaluates to."""
        result = self.call("Runtime.evaluate", {"expression": element}, session=self.page)
        object_id = result["result"].get("objectId")
        if not object_id:
            raise BrowserError(f"{element} is not an element")
        node = self.call("DOM.describeNode", {"objectId": object_id}, session=self.page)["node"]
        self.call("Runtime.releaseObject", {"objectId": object_id}, session=self.page)
        if not node.get("frameId"):
            raise BrowserError(f"{element} is not a frame's element")
        return node["frameId"]

    def click(self, element: str, *, timeout: float | None = None) -> None:
        """Click, with the mouse, the middle of the element that the JavaScript expression evaluates to.

        First the element is scrolled into view, and waited for until it is still (no CSS transition or animation
        running in the page, the same box two animation frames apart) and not covered by another element.
        """
        probe = f"""(async () => {{
            const el = ({element});
            if (!el) return null;
            el.scrollIntoView({{block: "nearest", inline: "nearest"}});
            const box = () => {{ const r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }};
            const before = box();
            for (let i = 0; i < 2; i++) await new Promise((r) => requestAnimationFrame(r));
            const [left, top, w, h] = box();
            const x = left + w / 2, y = top + h / 2;
            const hit = document.elementFromPoint(x, y);
            const moving = document.getAnimations().some((a) => a.pending || a.playState === "running");
            return {{x, y, w, h, still: !moving && before.every((v, i) => v === [left, top, w, h][i]),
                    hit: !!hit && (hit === el || el.contains(hit))}};
        }})()"""
        last: dict = {}

        def ready():
            box = self.evaluate(probe)
            if box is None:
                raise BrowserError(f"nothing to click: {element}")
            last.update(box)
            return box if box["still"] and box["hit"] and box["w"] > 0 and box["h"] > 0 else None

        try:
            box = self.wait_for(ready, what=f"{element} to be visible, still and uncovered", timeout=timeout)
        except BrowserError as err:
            raise BrowserError(f"{err} (last seen: {last})") from None
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                                   "buttons": 1 if kind == "mousePressed" else 0, "clickCount": 1},
                      session=self.page)

    def screenshot(self, element: str | None = None) -> bytes:
        """A PNG of the tab's viewport, or of the part of it where the element (a JavaScript expression) is."""
        params: dict[str, Any] = {"format": "png"}
        if element is not None:
            box = self.evaluate(f"""(() => {{
                const el = ({element});
                if (!el) return null;
                const r = el.getBoundingClientRect();
                const x = Math.max(r.left, 0), y = Math.max(r.top, 0);
                return {{x, y, width: Math.min(r.right, innerWidth) - x, height: Math.min(r.bottom, innerHeight) - y}};
            }})()""")
            if box is None or box["width"] < 1 or box["height"] < 1:
                raise BrowserError(f"nothing visible to screenshot: {element} ({box})")
            params["clip"] = {**box, "scale": 1}
        data = self.call("Page.captureScreenshot", params, session=self.page)["data"]
        return base64.b64decode(data)

    # ---------------------------------------------------------------------------------------------- findings
    def errors(self) -> list[ConsoleEntry]:
        return [entry for entry in self.console if entry.is_error]

    def remote_requests(self) -> list[str]:
        """Requests that needed the network: anything but data:, file:, blob: and the like."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]

    def media(self, frame: str | None = None, *, timeout: float = 10.0) -> dict:
        """Wait for the frame's images and audio/video to load (or fail), and tell how each did.

        Lazy images are made eager and media with preload="none" asked for metadata, so that all are tried.
        Media from data: URIs are also decoded by Web Audio. Returns {"images": [...], "media": [...],
        "links": [...]}, each entry a dict with "src" and "problem" (None when fine).
        """
        return self.evaluate(f"({_MEDIA_JS})({int(timeout * 1000)})", frame=frame, timeout=timeout + 10)


def screenshot_stats(png: bytes) -> tuple[int, float]:
    """(distinct colours, share of pixels not of the commonest colour) of a PNG: a blank page has (1, 0.0)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    commonest = max(count for count, _ in colours)
    return len(colours), 1.0 - commonest / (image.width * image.height)


_MEDIA_JS = r"""
async (timeoutMs) => {
    const short = (u) => (u && u.startsWith("data:") && u.length > 80 ? `${u.slice(0, 80)}… (${u.length} chars)` : u);
    const images = [...document.images];
    const media = [...document.querySelectorAll("audio, video")];
    for (const img of images) if (img.loading === "lazy") img.loading = "eager";
    for (const m of media) if (m.preload === "none") { m.preload = "metadata"; m.load(); }
    const sourceless = (m) => !m.getAttribute("src") && !m.querySelector("source[src]");
    const settled = () => images.every((i) => i.complete)
        && media.every((m) => m.readyState >= 1 || m.error || sourceless(m));
    const end = Date.now() + timeoutMs;
    while (!settled() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));

    const imageInfo = images.map((img) => {
        const src = img.currentSrc || img.getAttribute("src") || "";
        let problem = null;
        if (!src) problem = "no source";
        else if (!img.complete) problem = "still loading";
        else if (!(img.naturalWidth > 0 && img.naturalHeight > 0)) problem = "did not load (naturalWidth 0)";
        return {src: short(src), problem, width: img.naturalWidth, height: img.naturalHeight};
    });

    const mediaInfo = [];
    for (const m of media) {
        const src = m.currentSrc || m.getAttribute("src") || (m.querySelector("source[src]") || {}).src || "";
        const info = {src: short(src), kind: m.tagName.toLowerCase(), readyState: m.readyState,
                      duration: m.duration, problem: null};
        if (m.error) info.problem = `error ${m.error.code}: ${m.error.message || "cannot load or decode"}`;
        else if (!m.currentSrc) info.problem = "no usable source";
        else if (m.readyState < 1) info.problem = `metadata did not load (readyState ${m.readyState})`;
        else if (!(m.duration > 0)) info.problem = `duration ${m.duration}`;
        if (!info.problem && m.tagName === "AUDIO" && m.currentSrc.startsWith("data:")) {
            try {
                const bytes = await (await fetch(m.currentSrc)).arrayBuffer();
                const decoded = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes);
                info.decodedSeconds = decoded.duration;
                if (!(decoded.length > 0)) info.problem = "decodes to no samples";
            } catch (err) {
                info.problem = `Web Audio cannot decode it: ${err}`;
            }
        }
        mediaInfo.push(info);
    }

    const links = [...document.querySelectorAll("a[href]")].map((a) => {
        const href = a.getAttribute("href");
        if (/^(#|javascript:|mailto:)/i.test(href)) return null;
        let url = null;
        try { url = new URL(href, document.baseURI).href; } catch (err) { url = null; }
        return {src: short(href), file: url && url.startsWith("file:") ? url : null,
                problem: url === null ? `does not resolve against ${short(document.baseURI)}` : null};
    }).filter((x) => x !== null);
    return {url: short(location.href), images: imageInfo, media: mediaInfo, links};
}
"""
