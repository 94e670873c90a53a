"""The Snakemake report as a reader sees it: opened in headless Chromium, every result opened through its menus.

What the report is (Snakemake 9, --report x.html): one self-contained page, a React app. The workflow's outputs
marked with report() are in the page's global `results` ({path: {mime_type, data_uri, caption, ...}}) and
`categories` ({category: {subcategory: [path, ...]}}); with --report x.zip, data_uri is a relative path under
data/raw/ instead of a data: URI. The left <nav> lists General (Workflow, Statistics, About) and Results, one entry
per category; a category opens its subcategories (straight to the only one, if so) as a table of results, each
row with an "eye" and an "info" button. The eye shows an image in the content area (<img src=data_uri>), an HTML
or PDF page in an <iframe src=data_uri>, and offers anything else (CSV tables, WAV files) as a download
(<a href=data_uri download>). The info button shows the result's caption and its rule.

inspect_report() clicks through all of it with the mouse, as a person would, and lists what is wrong: a result
that no menu reaches, an image that does not load (naturalWidth 0), an <audio>/<video> whose metadata does not
load or (for data: URIs) does not decode, a link that does not resolve, a blank screenshot, a download without
content, an empty caption, any error in the browser console, any request that would need the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from .browser import Browser, BrowserError, ConsoleEntry, find_chromium, screenshot_stats, shorten
from .conftest import REPO

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install "
                                                "chromium; or point SYNTHPROXY_CHROMIUM at one)"),
]

# A finished run of config/tiny.yaml (results/ and .snakemake/ metadata) whose report is checked: this one when
# set, else the session's end-to-end run (conftest.tiny_run).
REPORT_RUN = os.environ.get("SYNTHPROXY_REPORT_RUN")

# A screenshot is taken as not blank with at least this many colours and this share of pixels off the commonest.
PAGE_MIN_COLOURS, PAGE_MIN_SHARE = 32, 0.05  # the whole window
PART_MIN_COLOURS, PART_MIN_SHARE = 8, 0.005  # one figure or embedded page

NAV = 'document.querySelector("#app nav")'
CONTENT = 'document.querySelector("#app > div > div.grow")'
HOME = 'document.querySelector("#app nav nav ol li a")'  # the first breadcrumb: back to the main menu
ROWS = 'document.querySelectorAll("#app nav table tbody tr")'


def by_text(selector: str, text: str) -> str:
    """The first element matching the CSS selector whose text is text (a JavaScript expression)."""
    return f"[...document.querySelectorAll({json.dumps(selector)})].find((el) => el.textContent.trim() === " \
           f"{json.dumps(text)})"


def menu_item(label: str) -> str:
    return by_text("#app nav ul li a", label)


def row_button(row: int, which: int) -> str:
    """which=0: the eye (show), 1: info."""
    return f'{ROWS}[{row}].querySelectorAll("td:last-child a")[{which}]'


@dataclass
class Inspection:
    """What inspect_report found; problems is empty for a report that opens cleanly."""

    report: Path
    problems: list[str] = field(default_factory=list)
    opened: dict[str, str] = field(default_factory=dict)  # result path -> how it was shown: image, page, pdf, download
    media: dict[str, dict] = field(default_factory=dict)  # result path -> its page's images, audio, links
    console: list[ConsoleEntry] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)
    screens: Path | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"report {self.report} ({self.seconds:.1f} s in Chromium), screenshots in {self.screens}"]
        lines += [f"  {kind:8} {path}" for path, kind in sorted(self.opened.items())]
        lines += [f"  console: {entry}" for entry in self.console if entry.level in ("error", "warning")]
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)


def open_report(report: Path, scratch: Path) -> Path:
    """The report's HTML page: the file itself, or the report.html inside a --report x.zip, unpacked to scratch."""
    if report.suffix != ".zip":
        return report
    with zipfile.ZipFile(report) as archive:
        archive.extractall(scratch)
    pages = sorted(scratch.glob("*/report.html"))
    assert len(pages) == 1, f"{report} holds {len(pages)} */report.html"
    return pages[0]


def build_report(run: Path, out: Path, *, snakefile: Path = REPO / "Snakefile", configfile: str | None = None,
                 extra: tuple[str, ...] = ()) -> Path:
    """snakemake --report out for the finished run in directory run (out: .html, self-contained, or .zip)."""
    out.parent.mkdir(parents=True, exist_ok=True)  # Snakemake does not make it
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(run),
           "--report", str(out), *extra]
    if configfile:
        cmd += ["--configfile", configfile]
    proc = subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.exists(), f"{' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return out


class _Inspector:
    def __init__(self, browser: Browser, page: Path, screens: Path, found: Inspection):
        self.b, self.page, self.screens, self.found = browser, page, screens, found
        self.shots = 0
        self.results: dict[str, dict] = {}

    def problem(self, text: str) -> None:
        self.found.problems.append(text)

    def shoot(self, name: str, element: str | None = None) -> None:
        """Save a screenshot (of the window, or of one element) and check that it is not blank."""
        png = self.b.screenshot(element)
        self.shots += 1
        (self.screens / f"{self.shots:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')[:60]}.png").write_bytes(png)
        colours, share = screenshot_stats(png)
        least_colours, least_share = (PAGE_MIN_COLOURS, PAGE_MIN_SHARE) if element is None else (
            PART_MIN_COLOURS, PART_MIN_SHARE)
        if colours < least_colours or share < least_share:
            self.problem(f"{name}: screenshot looks blank ({colours} colours, {share:.1%} of pixels off the "
                         f"commonest colour)")

    def check_media(self, where: str, frame: str | None = None) -> dict:
        media = self.b.media(frame)
        for kind in ("images", "media", "links"):
            for item in media[kind]:
                if item.get("problem"):
                    self.problem(f"{where}: {kind[:-1] if kind != 'media' else item['kind']} {item['src']}: "
                                 f"{item['problem']}")
                elif item.get("file"):
                    target = Path(unquote(urlparse(item["file"]).path))
                    if not target.exists():
                        self.problem(f"{where}: link {item['src']}: {target} does not exist")
        return media

    def wait_app(self) -> None:
        self.b.wait_for(lambda: self.b.evaluate(
            f'!!{NAV} && getComputedStyle(document.querySelector("#loading-screen")).display === "none"'),
            what="the report's app to start")

    def go_home(self) -> None:
        self.b.click(HOME)
        self.b.wait_for(lambda: self.b.evaluate(f"!!{menu_item('Workflow')}"), what="the main menu")

    def run(self) -> None:
        self.b.goto(self.page.as_uri())
        self.wait_app()
        listing = self.b.evaluate("""({results: Object.fromEntries(Object.entries(results).map(([p, r]) =>
            [p, {mime: r.mime_type, caption: r.caption, rule: r.job_properties.rule}])), categories})""")
        results, categories = listing["results"], listing["categories"]
        self.results = results
        if not results:
            self.problem("the report holds no results")

        # Landing page: the workflow's description and its rule graph (Vega).
        self.b.wait_for(lambda: self.b.evaluate('!!document.querySelector("#rulegraph svg, #rulegraph canvas")'),
                        what="the rule graph")
        self.check_media("landing page")
        self.shoot("landing page")
        self.b.click(menu_item("Statistics"))
        self.b.wait_for(lambda: self.b.evaluate(
            'document.querySelectorAll("#runtimes :is(svg, canvas), #timeline :is(svg, canvas)").length >= 2'),
            what="the runtime statistics")
        self.shoot("statistics", 'document.querySelector("#runtimes")')
        self.b.click(menu_item("About"))
        first_package = '[...document.querySelectorAll("#app nav ul li a")][0]'
        self.b.click(first_package)
        self.b.wait_for(lambda: self.b.evaluate(f'({CONTENT}.querySelector("pre") || {{}}).textContent'),
                        what="a package's license")
        self.go_home()

        single = len(categories) == 1
        for category in sorted(categories, key=str.casefold):
            for subcategory in sorted(categories[category], key=str.casefold):
                self.visit_subcategory(category, subcategory, single, len(categories[category]) == 1, results)

        for path in sorted(set(results) - set(self.found.opened)):
            self.problem(f"{path}: no menu of the report reaches it")

    def open_list(self, category: str, subcategory: str, single: bool, only_sub: bool) -> None:
        """From the main menu, open the table of results of a subcategory."""
        self.go_home()
        self.b.click(menu_item("Results" if single else category))
        if not only_sub:
            self.b.click(menu_item(subcategory))
        self.b.wait_for(lambda: self.b.evaluate(f"{ROWS}.length"), what=f"the results of {category}/{subcategory}")

    def back_to_list(self, category: str, subcategory: str, single: bool, only_sub: bool) -> None:
        """From a result's info, back to its table of results by the breadcrumbs."""
        crumb = category if only_sub else subcategory
        if single and category == "Other":
            crumb = "Results" if only_sub else subcategory  # Snakemake names the only, default, category so
        self.b.click(by_text("#app nav nav ol li a", crumb))
        self.b.wait_for(lambda: self.b.evaluate(f"{ROWS}.length && !{NAV}.querySelector('.prose')"),
                        what=f"the results of {category}/{subcategory}")

    def toggle_labels(self) -> list[str]:
        return self.b.evaluate('[...document.querySelectorAll("#app nav fieldset label")].map((l) => '
                               'l.textContent.trim())')

    def visit_subcategory(self, category: str, subcategory: str, single: bool, only_sub: bool,
                          results: dict) -> None:
        where = (category, subcategory, single, only_sub)
        self.open_list(*where)
        rows = self.b.evaluate(f"{ROWS}.length")
        # Snakemake shows at most one toggle (a label with two values, each on half of the results): try both.
        for state in [None, *self.toggle_labels()]:
            for row in range(rows):
                if row or state is not None:
                    self.back_to_list(*where)
                if state is not None:
                    self.b.click(by_text("#app nav fieldset label", state))
                path = self.show(row, f"{category}/{subcategory} row {row + 1}" + (f" ({state})" if state else ""))
                if path is not None:
                    self.info(row, path, results[path])

    def show(self, row: int, where: str) -> str | None:
        """Press a result's eye; check what it shows (or offers to download). Returns the result's path."""
        eye = row_button(row, 0)
        href = self.b.evaluate(f'{eye}.getAttribute("href")')
        if href != "#":
            return self.download(eye, where)
        # What is shown now, so as to wait for what the click shows instead.
        self.b.evaluate(f'window.__shownBefore = ({CONTENT}.querySelector("img, iframe") || {{}}).src || null')
        self.b.click(eye)
        shown = self.b.wait_for(lambda: self.b.evaluate(f"""(() => {{
                const el = {CONTENT}.querySelector("img, iframe");
                if (!el || el.src === window.__shownBefore) return null;
                const src = el.getAttribute("src");
                return {{tag: el.tagName.toLowerCase(), path: Object.keys(results).find((p) => results[p].data_uri
                         === src) || null}};
            }})()"""), what=f"{where} to be shown")
        path = shown["path"]
        if path is None:
            self.problem(f"{where}: shows a {shown['tag']} that is none of the report's results")
            return None
        if shown["tag"] == "img":
            self.found.opened[path] = "image"
            self.found.media[path] = self.check_media(path)
            self.shoot(path, f'{CONTENT}.querySelector("img")')
            return path
        iframe = f'{CONTENT}.querySelector("iframe")'
        if self.results[path]["mime"] == "application/pdf":
            self.found.opened[path] = "pdf"  # shown by Chromium's PDF viewer: nothing of the page's own to look into
            return path
        self.found.opened[path] = "page"
        frame = self.b.frame_of(iframe)

        def loaded():
            try:
                return self.b.evaluate('document.readyState === "complete" && location.href !== "about:blank"',
                                       frame=frame)
            except BrowserError:
                return False

        self.b.wait_for(loaded, what=f"{path} to load in its frame")
        self.found.media[path] = self.check_media(path, frame)
        if not self.b.evaluate("document.body && (document.body.innerText.trim().length > 0 || "
                               "document.body.querySelector('img, audio, video, svg, canvas, table') !== null)",
                               frame=frame):
            self.problem(f"{path}: its page is empty")
        self.shoot(path, iframe)
        return path

    def download(self, eye: str, where: str) -> str | None:
        """A result offered as a download (tables, audio files...): check that the link has its content."""
        info = self.b.evaluate(f"""(async () => {{
            const a = {eye};
            const href = a.getAttribute("href");
            const path = Object.keys(results).find((p) => results[p].data_uri === href) || null;
            const info = {{path, url: href.startsWith("data:") ? null : a.href, download: a.getAttribute("download"),
                          mime: path && results[path].mime_type}};
            if (href.startsWith("data:")) {{
                const bytes = await (await fetch(href)).arrayBuffer();
                info.bytes = bytes.byteLength;
                if (info.mime && info.mime.startsWith("text/")) {{
                    info.text = new TextDecoder().decode(bytes.slice(0, 65536));
                }}
                if (info.mime && info.mime.startsWith("audio/")) {{
                    try {{
                        info.seconds = (await new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes)).duration;
                    }} catch (err) {{ info.audioError = String(err); }}
                }}
            }}
            return info;
        }})()""")
        path = info["path"]
        if path is None:
            self.problem(f"{where}: its download link is none of the report's results")
            return None
        self.found.opened[path] = "download"
        if info["url"] is not None:  # --report x.zip: a file beside the page
            target = Path(unquote(urlparse(info["url"]).path))
            if not target.is_file():
                self.problem(f"{path}: download {target} does not exist")
                return path
            data = target.read_bytes()
            info["bytes"] = len(data)
            if info["mime"].startswith("text/"):
                info["text"] = data[:65536].decode("utf-8", "replace")
        if not info.get("bytes"):
            self.problem(f"{path}: its download is empty")
        if info["mime"] in ("text/csv", "text/tab-separated-values"):
            lines = [line for line in info.get("text", "").splitlines() if line.strip()]
            if len(lines) < 2:
                self.problem(f"{path}: table has {len(lines)} lines (a header and at least one row expected)")
        if info.get("audioError"):
            self.problem(f"{path}: Web Audio cannot decode it: {info['audioError']}")
        if not info.get("download"):
            self.problem(f"{path}: its link has no download name")
        return path

    def info(self, row: int, path: str, result: dict) -> None:
        """Press a result's info button: its caption (and rule) must show."""
        self.b.click(row_button(row, 1))
        self.b.wait_for(lambda: self.b.evaluate(
            f'[...{NAV}.querySelectorAll("nav ol li")].some((li) => li.textContent === {json.dumps(path)})'),
            what=f"the info of {path}")
        shown = self.b.evaluate(f'({NAV}.querySelector(".prose") || {{}}).textContent || ""')
        if not shown.strip() or not re.sub(r"<[^>]+>", "", result["caption"] or "").strip():
            self.problem(f"{path}: no caption")
        if result["rule"] not in self.b.evaluate(f"{NAV}.innerText"):
            self.problem(f"{path}: its info does not name its rule {result['rule']}")


def inspect_report(browser: Browser, report: Path, scratch: Path) -> Inspection:
    """Open the report (.html, or .zip unpacked into scratch), click through all of it, and say what is wrong."""
    screens = scratch / "screens"
    screens.mkdir(parents=True, exist_ok=True)
    found = Inspection(report=report, screens=screens)
    start = time.monotonic()
    page = open_report(report, scratch / "unpacked")
    inspector = _Inspector(browser, page, screens, found)
    try:
        inspector.run()
    except BrowserError as err:
        found.problems.append(f"could not click through the report: {err}")
        with contextlib.suppress(BrowserError):
            (screens / "failure.png").write_bytes(browser.screenshot())
    found.console = list(browser.console)
    found.remote_requests = browser.remote_requests()
    found.problems += [f"console: {entry}" for entry in browser.errors()]
    found.problems += [f"needs the network: {shorten(url)}" for url in found.remote_requests]
    found.seconds = time.monotonic() - start
    return found


@pytest.fixture
def browser():
    with Browser(CHROMIUM) as chromium:
        yield chromium


@pytest.fixture
def check_report(browser, tmp_path):
    """check_report(path) opens that report in headless Chromium and fails the test on any problem found."""

    def check(report: Path) -> Inspection:
        found = inspect_report(browser, report, tmp_path / report.stem)
        print(found.summary())
        assert not found.problems, found.summary()
        return found

    return check


@pytest.fixture(scope="module")
def tiny_report(request, tmp_path_factory) -> Path:
    """The self-contained report of a finished tiny run: $SYNTHPROXY_REPORT_RUN, else the end-to-end run."""
    run = Path(REPORT_RUN) if REPORT_RUN else request.getfixturevalue("tiny_run")[0]
    if not (run / ".snakemake" / "metadata").is_dir():
        pytest.fail(f"no finished run of config/tiny.yaml at {run} (SYNTHPROXY_REPORT_RUN)")
    return build_report(run, tmp_path_factory.mktemp("report") / "report.html", configfile="config/tiny.yaml")


def test_tiny_report_opens_cleanly(tiny_report, check_report):
    found = check_report(tiny_report)
    kinds = set(found.opened.values())
    assert "image" in kinds and "download" in kinds, found.summary()


# ---------------------------------------------------------------------------------------------------------------
# A throwaway workflow with a listening page, so that the <audio> checks are exercised on every run: the same
# page made three ways -- self-contained (data: URIs), as a directory with report(..., htmlindex=) (needs
# --report x.zip), and as one file with relative links to its WAV and PNG (broken in any report: only the page
# is embedded or copied, not what it links to).

LISTENING_SNAKEFILE = textwrap.dedent('''
    import base64, math, os, shutil, struct, wave
    from PIL import Image

    PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>Listening</title></head><body>'
            '<h1>Listening test</h1><table><tr><td><audio controls preload="none" src="{wav}"></audio></td>'
            '<td><img src="{png}" alt="mel-spectrogram"></td><td><a href="{wav}">WAV</a></td></tr></table>'
            '</body></html>')

    BREAKAGE = '<script>console.error("deliberate error")</script><img src="http://127.0.0.1:9/remote.png">'

    def write_media(wav, png, rate=16000):
        with wave.open(wav, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                                     for i in range(rate // 2)))
        image = Image.new("RGB", (96, 48))
        image.putdata([(x * 2, y * 5, (x * y) % 256) for y in range(48) for x in range(96)])
        image.save(png)

    def data_uri(path, mime):
        with open(path, "rb") as f:
            return f"data:{mime};base64," + base64.b64encode(f.read()).decode()

    DIR = config.get("dir", False)
    BROKEN = config.get("broken", False)

    rule all:
        input:
            "results/inline.html", "results/tone.wav", "results/mel.png",
            ["results/listening"] if DIR else [], ["results/relative.html"] if BROKEN else []

    rule inline:
        output:
            page=report("results/inline.html", category="Listening", caption="caption.rst"),
            wav=report("results/tone.wav", category="Listening", caption="caption.rst"),
            png=report("results/mel.png", category="Figures", caption="caption.rst"),
        run:
            write_media(output.wav, output.png)
            with open(output.page, "w") as f:
                f.write(PAGE.format(wav=data_uri(output.wav, "audio/wav"), png=data_uri(output.png, "image/png")))

    # Broken on purpose: relative links to files not in the report, a script error, a picture from a server.
    rule relative:
        input: wav="results/tone.wav", png="results/mel.png"
        output: report("results/relative.html", category="Listening", caption="caption.rst")
        run:
            with open(output[0], "w") as f:
                f.write(PAGE.format(wav="tone.wav", png="mel.png").replace("</body>", BREAKAGE + "</body>"))

    rule listening:
        input: wav="results/tone.wav", png="results/mel.png"
        output:
            report(directory("results/listening"), htmlindex="index.html", category="Listening", caption="caption.rst")
        run:
            os.makedirs(output[0])
            shutil.copy(input.wav, output[0])
            shutil.copy(input.png, output[0])
            with open(os.path.join(output[0], "index.html"), "w") as f:
                f.write(PAGE.format(wav="tone.wav", png="mel.png"))
''')


@pytest.fixture(scope="module")
def listening_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("listening")
    (run / "Snakefile").write_text(LISTENING_SNAKEFILE)
    (run / "caption.rst").write_text("A throwaway result of the browser test: a 0.5 s tone and a gradient.\n")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "all", "--config", "dir=1", "broken=1"]
    proc = subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run


def listening_report(run: Path, out: Path, **config) -> Path:
    extra = ("--config", *(f"{key}={int(value)}" for key, value in config.items()))
    return build_report(run, out, snakefile=run / "Snakefile", extra=extra)


def test_listening_pages_in_self_contained_report(listening_run, browser, tmp_path):
    """The page with data: URIs plays; the one with relative links has nothing to link to, and that is caught
    (as are its console error and its request to a server)."""
    report = listening_report(listening_run, tmp_path / "listening.html", broken=True)
    found = inspect_report(browser, report, tmp_path / "listening")
    print(found.summary())
    assert found.opened == {"results/inline.html": "page", "results/relative.html": "page",
                            "results/tone.wav": "download", "results/mel.png": "image"}, found.summary()
    (audio,) = found.media["results/inline.html"]["media"]
    assert audio["problem"] is None and audio["src"].startswith("data:audio/wav") and audio["readyState"] >= 1
    assert audio["duration"] == pytest.approx(0.5) and audio["decodedSeconds"] == pytest.approx(0.5)
    (image,) = found.media["results/inline.html"]["images"]
    assert image["problem"] is None and (image["width"], image["height"]) == (96, 48)
    problems = "\n".join(found.problems)
    for what in ("audio tone.wav", "image mel.png", "link tone.wav", "image http://127.0.0.1:9/remote.png"):
        assert f"results/relative.html: {what}: " in problems, problems
    assert "console: [error] console: deliberate error" in problems, problems
    assert "needs the network: http://127.0.0.1:9/remote.png" in problems, problems
    assert all(p.startswith(("results/relative.html: ", "console: ", "needs the network: ")) for p in found.problems)


def test_listening_directory_plays_in_zip_report(listening_run, check_report, tmp_path):
    """A directory with report(..., htmlindex=) keeps its WAVs and PNGs beside the page (--report x.zip only)."""
    found = check_report(listening_report(listening_run, tmp_path / "listening.zip", dir=True))
    page = "results/listening/index.html"
    assert found.opened[page] == "page"
    (audio,) = found.media[page]["media"]
    assert audio["src"].startswith("file:") and audio["src"].endswith("/tone.wav")
    assert audio["readyState"] >= 1 and audio["duration"] == pytest.approx(0.5)
    assert found.media[page]["images"][0]["width"] == 96
    assert found.media[page]["links"][0]["file"].endswith("/tone.wav")
