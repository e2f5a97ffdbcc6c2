"""Reports in real headless Chromium: a hostile journal runs no script and
injects no element; a lab report renders (checked on its screenshot).

Chromium never touches the network: pages are opened via file://, carry a
CSP of default-src 'none', and every host name resolves to nothing.
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaosk3s.report import render_journal, update_index
from chaosk3s.report.samples import lab_journal

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian package `chromium` is not installed "
    "(apt-get install -y chromium); browser tests need it")
MARK = "ck3sPWNED"
PAYLOADS = [
    f"<script>document.title='{MARK}'</script>",
    f"<img src=x onerror=\"document.body.setAttribute('data-{MARK}',1)\">",
    f"</svg><script>document.body.id='{MARK}'</script>",
    f"\"><svg onload=\"document.title='{MARK}'\">",
    f"javascript:document.title='{MARK}'",
    f"</title></textarea><iframe srcdoc=\"<script>parent.document.title="
    f"'{MARK}'</script>\">",
]
EVIL = "".join(PAYLOADS)
SHOT_SIZE = (1280, 1400)
DEVIATED_RGB = (0xE8, 0x59, 0x0C)  # the deviated verdict banner


def hostile_journal() -> dict:
    """The lab journal with markup in every value a cluster controls."""
    raw = lab_journal(agents=2, buggy=True)
    raw["experiment"].update(title=f"T{EVIL}", description=EVIL,
                             tags=[EVIL])
    raw["experiment"]["configuration"] = {EVIL: EVIL, "url": PAYLOADS[4]}
    # A secrets value is hidden wherever it appears: not EVIL itself.
    raw["experiment"]["secrets"] = {EVIL: {EVIL: f"<b>{MARK}</b>"}}
    section = raw["chaosk3s"]
    section.update(target=EVIL, cluster=EVIL, k3s_versions=[EVIL],
                   variables={EVIL: EVIL, "lab_spec": PAYLOADS[1]},
                   lab={"release": EVIL, "family": EVIL,
                        "timings_profile": EVIL, "timings": {EVIL: EVIL}})
    section["nodes"] = {f"{n}{EVIL}": {**v, "role": EVIL}
                        for n, v in section["nodes"].items()}
    for node in section["nodes"].values():
        for outage in node["outages"]:
            outage["fault"] = EVIL
    for change in section["timeline"]:
        change["node"] += EVIL
    for fault in section["faults"]:
        fault.update(id=EVIL, kind=EVIL, description=EVIL,
                     nodes=[EVIL])
    for run in raw["run"] + raw["rollbacks"]:
        run["activity"]["name"] += EVIL
        run["activity"]["provider"]["module"] = EVIL
        run["output"] = {EVIL: EVIL}
        run["exception"] = [f"Traceback\n{EVIL}\n", f"ActivityFailed: {EVIL}"]
        run["activity"]["tolerance"] = {"type": EVIL, "pattern": EVIL}
    return raw


def chromium(page: Path, tmp_path: Path, *extra: str) -> str:
    """Run headless Chromium on a file; the whole process group is ended
    whatever happens."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}", "--hide-scrollbars", *extra,
            page.resolve().as_uri()]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


class DomCheck(HTMLParser):
    """Parses the DOM Chromium dumped: live elements, not escaped text."""

    def __init__(self, dom: str):
        super().__init__(convert_charrefs=True)
        self.signs: list[str] = []
        self.stack: list[str] = []
        self.page_title = ""
        self.feed(dom)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "iframe", "img", "object", "embed"):
            self.signs.append(f"<{tag}> element")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or f"data-{MARK.lower()}" == name:
                self.signs.append(f"{name} attribute on <{tag}>")
            if name in ("href", "src") and value.startswith("javascript:"):
                self.signs.append(f"javascript: URL on <{tag}>")
            if name == "id" and value == MARK.lower():
                self.signs.append("id set by a payload")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        # the document's own <title> sits in <head>; SVG titles do not
        if self.stack[-2:] == ["head", "title"]:
            self.page_title += data


def injected(dom: str) -> list[str]:
    """Signs that markup from the journal became live DOM or ran."""
    check = DomCheck(dom)
    if check.page_title.strip() == MARK:
        check.signs.append("document.title set by a payload")
    return check.signs


@needs_chromium
def test_detector_catches_a_page_that_does_not_escape(tmp_path):
    """The check below is only worth something if it can fail."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<html><head><title>x</title></head><body>{EVIL}"
                    "</body></html>")
    signs = injected(chromium(page, tmp_path, "--dump-dom"))
    assert "<script> element" in signs
    assert "document.title set by a payload" in signs  # a script ran
    assert f"data-{MARK.lower()} attribute on <body>" in signs


@needs_chromium
def test_hostile_report_runs_no_script_and_injects_nothing(tmp_path):
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(hostile_journal()))
    page = render_journal(journal, tmp_path)
    dom = chromium(page, tmp_path, "--dump-dom")
    assert injected(dom) == []
    assert 'class="verdict v-deviated"' in dom  # it did render
    assert dom.count("<svg") == 2 and "&lt;script&gt;" in dom


@needs_chromium
def test_hostile_index_runs_no_script(tmp_path):
    run = tmp_path / "javascript:alert(1)" / EVIL.replace("/", "_")[:80]
    run.mkdir(parents=True)
    (run / "journal.json").write_text(json.dumps(hostile_journal()))
    dom = chromium(update_index(tmp_path), tmp_path / "javascript:alert(1)",
                   "--dump-dom")
    assert injected(dom) == []
    assert 'href="./javascript%3Aalert%281%29/' in dom


def png_pixels(data: bytes, rows: int
               ) -> tuple[int, int, int, list[bytes]]:
    """Width, height and the first `rows` unfiltered scanlines of an 8-bit
    RGB or RGBA PNG (what Chromium writes); no imaging library needed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    bpp = 4 if colour == 6 else 3
    chunks, pos = [], 8
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + size])
        pos += 12 + size
    raw = zlib.decompressobj().decompress(b"".join(chunks),
                                          (width * bpp + 1) * rows)
    stride, prev, lines = width * bpp, bytearray(width * bpp), []
    for y in range(rows):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        lines.append(bytes(line))
        prev = line
    return width, height, bpp, lines


@needs_chromium
def test_screenshot_of_a_lab_report(tmp_path):
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(lab_journal(agents=4, buggy=True)))
    page = render_journal(journal, tmp_path)
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, f"--screenshot={shot}",
             f"--window-size={SHOT_SIZE[0]},{SHOT_SIZE[1]}")
    data = shot.read_bytes()
    width, height, bpp, lines = png_pixels(data, rows=300)
    assert (width, height) == SHOT_SIZE
    pixels = [line[i:i + 3] for line in lines
              for i in range(0, len(line), bpp)]
    banner = sum(1 for p in pixels if tuple(p) == DEVIATED_RGB)
    assert banner > 50_000, "no deviated banner near the top of the page"
    assert len(set(pixels)) > 200, "the page looks blank or uniform"
