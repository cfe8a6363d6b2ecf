"""The documentation site: ``make docs`` builds it (mkdocs --strict), and a real browser reads it.

The site is built into a temporary folder, every internal link and every page's own resources
(stylesheets, scripts, images) are checked to exist (a link's ``#anchor`` too), and headless
Chromium opens the pages over a local HTTP server (the search index is fetched, as on a real
host) with the network cut off: no page may log a console message. Skips, saying why, where
MkDocs with its plugins or Chromium is not installed (``pip install -e '.[docs]'``; .ci/run
installs both).
"""

from __future__ import annotations

import functools
import html.parser
import importlib.util
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers import chromium

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def missing_plugins() -> list[str]:
    return [
        name
        for name in PLUGINS
        if importlib.util.find_spec(name.split(".")[0]) is None or importlib.util.find_spec(name) is None
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = missing_plugins()
    if missing:
        pytest.skip(f"the docs' tools are not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


class Links(html.parser.HTMLParser):
    """The ``href``/``src`` of a page's tags and the ``id`` of its elements."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.refs.append(value)
            if name == "id" and value:
                self.ids.add(value)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def internal_target(page: Path, ref: str, site: Path) -> tuple[Path, str] | None:
    """The file (and fragment) an internal reference points at; None for an external one."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith(("mailto:", "data:", "javascript:")):
        return None
    if not parts.path:
        return page, parts.fragment
    # an absolute path is the site's root (404.html links so: it is served at any depth)
    base = site if parts.path.startswith("/") else page.parent
    target = (base / unquote(parts.path).lstrip("/")).resolve()
    if target.is_dir() or parts.path.endswith("/"):
        target = target / "index.html"
    return target, parts.fragment


def broken_links(site: Path) -> list[str]:
    pages = sorted(site.rglob("*.html"))
    ids = {page.resolve(): parse(page).ids for page in pages}
    broken = []
    for page in pages:
        for ref in parse(page).refs:
            found = internal_target(page, ref, site)
            if found is None:
                continue
            target, fragment = found
            where = f"{page.relative_to(site)} -> {ref}"
            if not target.is_file():
                broken.append(f"{where} (no such file)")
            elif fragment and target.suffix == ".html" and fragment not in ids.get(target, set()):
                broken.append(f"{where} (no #{fragment} there)")
    return broken


def test_the_link_check_finds_a_broken_link_and_a_missing_anchor(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text(
        "<a href='a/'>ok</a><a href='b/'>gone</a><a href='a/#x'>x</a><a href='https://example.org/'>out</a>"
    )
    (tmp_path / "a" / "index.html").write_text("<h2 id='y'>y</h2><a href='../#top'>up</a><img src='../i.png'>")
    assert broken_links(tmp_path) == [
        "a/index.html -> ../#top (no #top there)",
        "a/index.html -> ../i.png (no such file)",
        "index.html -> b/ (no such file)",
        "index.html -> a/#x (no #x there)",
    ]


def test_the_site_has_every_page_and_no_broken_internal_link(site):
    for page in (
        "index.html",
        "getting-started/index.html",
        "concepts/index.html",
        "guides/gpu/index.html",
        "guides/backtest/index.html",
        "measured/demo/index.html",
        "reference/layers/index.html",
    ):
        assert (site / page).is_file(), page
    assert broken_links(site) == []


def test_the_api_reference_is_generated_from_the_docstrings(site):
    layers = (site / "reference" / "layers" / "index.html").read_text(encoding="utf-8")
    assert 'id="rnnkit.layers.GRU"' in layers and "reset_after" in layers
    training = (site / "reference" / "training" / "index.html").read_text(encoding="utf-8")
    assert 'id="rnnkit.training.device.resolve_device"' in training
    # the docstrings' "Example:" doctests read as code, not as prose with Markdown links
    assert '<span class="gp">&gt;&gt;&gt; </span><span class="n">resolve_device</span>' in training


# --- a real browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(site):
    """The built site over HTTP on 127.0.0.1 (a file:// page may not fetch the search index)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def browse(url: str, screenshot: Path) -> list[str]:
    """Load a page in headless Chromium (any host but 127.0.0.1 unreachable); returns its console messages."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--window-size=1280,1600",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
            f"--screenshot={screenshot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.is_file(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_a_console_error_on_a_served_page_is_caught(tmp_path):
    (tmp_path / "bad.html").write_text(
        "<!DOCTYPE html><html><body><script>console.error('docs-test-marker')</script></body></html>"
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        messages = browse(f"http://127.0.0.1:{server.server_address[1]}/bad.html", tmp_path / "bad.png")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert any("docs-test-marker" in m for m in messages), messages


@pytest.mark.parametrize(
    "page",
    ["", "getting-started/", "concepts/", "guides/gpu/", "measured/demo/", "reference/layers/", "reference/training/"],
)
def test_chromium_opens_the_pages_without_a_console_message(served, tmp_path, page):
    shot = tmp_path / "page.png"
    assert browse(served + page, shot) == []
    assert shot.stat().st_size > 10_000  # a page was drawn, not a blank one
