"""Headless Chromium for the report: ``report.pdf`` of a run and screenshots of its pages.

Chromium is optional: when it is not installed, :func:`find_chromium`
returns None and the callers say how to install it
(:data:`INSTALL_HINT`) instead of failing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .html import PAGE_TITLES, print_version

log = logging.getLogger(__name__)

#: Names of the Chromium executable, tried in order (``MSE_CHROMIUM`` overrides).
CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

INSTALL_HINT = (
    "headless Chromium is not installed: install it (Debian/Ubuntu: "
    "'sudo apt-get update && sudo apt-get install -y chromium'), or set MSE_CHROMIUM to its path"
)

#: Flags of every Chromium call (no GPU or sandbox in containers and CI; no first-run dialogs).
FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
)


def find_chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    override = os.environ.get("MSE_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def publication_pages(run_dir: Path) -> list[Path]:
    """The run's publication pages (``html/*.html``) in reading order.

    Raises
    ------
    ValueError
        When the run folder has no ``html/`` pages.
    """
    html_dir = Path(run_dir) / "html"
    pages = sorted(html_dir.glob("*.html")) if html_dir.is_dir() else []
    order = list(PAGE_TITLES)
    pages.sort(key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.name))
    if not pages:
        raise ValueError(f"run folder {run_dir}: no publication pages in html/ (run 'mse run' first)")
    return pages


def _run(cmd: list[str], timeout: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mse-chromium-") as profile:
        # a private profile: no user settings, nothing left behind
        subprocess.run(
            cmd + [f"--user-data-dir={profile}"],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def write_pdf(run_dir: Path, *, chromium: str | None = None, timeout: int = 300) -> Path:
    """Print the run's publication pages into one ``report.pdf`` in the run folder.

    The pages are joined into one print document (:func:`.html.print_version`:
    annexes opened, each page on a new sheet) and printed by headless Chromium.

    Parameters
    ----------
    run_dir : Path
        A run folder with ``html/``.
    chromium : str, optional
        The executable (default :func:`find_chromium`).
    timeout : int
        Seconds Chromium may take.

    Returns
    -------
    Path
        ``run_dir/report.pdf``.

    Raises
    ------
    RuntimeError
        With :data:`INSTALL_HINT` when Chromium is not installed.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError(INSTALL_HINT)
    run_dir = Path(run_dir)
    pages = [p.read_text(encoding="utf-8") for p in publication_pages(run_dir)]
    out = run_dir / "report.pdf"
    with tempfile.TemporaryDirectory(prefix="mse-print-") as tmp:
        doc = Path(tmp) / "report.html"
        doc.write_text(print_version(pages), encoding="utf-8")
        part = Path(tmp) / "report.pdf"
        _run([chromium, *FLAGS, "--no-pdf-header-footer", f"--print-to-pdf={part}", doc.as_uri()], timeout)
        if not part.is_file() or part.stat().st_size == 0:
            raise RuntimeError(f"Chromium wrote no PDF for {run_dir.name}")
        shutil.move(str(part), out)
    log.info("wrote %s", out.name)
    return out


def screenshot(
    page: Path,
    out: Path,
    *,
    width: int = 1280,
    height: int = 900,
    full: bool = False,
    chromium: str | None = None,
    timeout: int = 120,
    max_height: int = 16000,
) -> tuple[Path, int]:
    """A PNG of one page as headless Chromium renders it.

    Parameters
    ----------
    page : Path
        The HTML file.
    out : Path
        The PNG to write.
    width, height : int
        The browser window (``height``: what a reader sees first, "above the fold").
    full : bool
        The whole page: the window is ``max_height`` high and the blank area
        below the content is cut off.
    chromium : str, optional
    timeout : int
    max_height : int
        Tallest full-page screenshot (Chromium's limit is about 16,000 px).

    Returns
    -------
    (Path, int)
        The PNG and the height of the content in pixels (for ``full``: the
        page height, at most ``max_height``).
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError(INSTALL_HINT)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h = max_height if full else height
    _run(
        [chromium, *FLAGS, f"--window-size={width},{h}", f"--screenshot={out}", Path(page).resolve().as_uri()], timeout
    )
    if not full:
        return out, height
    return out, _trim_blank_bottom(out)


#: Printable width of an A4 sheet with the report's 12 mm side margins, in CSS pixels (96 per inch).
PRINT_WIDTH_PX = round((210 - 2 * 12) / 25.4 * 96)

_PROBE = """<script>
window.addEventListener('load', () => {
  const w = document.documentElement.clientWidth, out = [];
  document.querySelectorAll('table, img').forEach((el) => {
    const r = el.getBoundingClientRect();
    if (r.right > w + 1) {
      const cell = el.closest('.jp-Cell');
      const text = (el.querySelector('caption') || cell || el).innerText || el.tagName;
      out.push(Math.round(r.right - w) + 'px ' + text.slice(0, 80).replace(/\\s+/g, ' '));
    }
  });
  const p = document.createElement('pre'); p.id = 'mse-probe'; p.textContent = out.join('\\n');
  document.body.appendChild(p);
});
</script>"""


def print_overflow(page: Path, *, chromium: str | None = None, timeout: int = 120) -> list[str]:
    """Tables and figures of a page that would stick out of the printed A4 sheet.

    The page's print rules (``@media print``) are applied on screen in a
    window as wide as the printable width (:data:`PRINT_WIDTH_PX`), and a
    small script lists every table or image whose right edge lies beyond it.
    (Chromium's ``--print-to-pdf`` lays out at the same width.)

    Returns
    -------
    list of str
        ``"<px beyond> <the table's caption or cell text>"``; empty when everything fits.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError(INSTALL_HINT)
    text = print_version([Path(page).read_text(encoding="utf-8")]).replace("@media print", "@media all")
    with tempfile.TemporaryDirectory(prefix="mse-probe-") as tmp:
        doc = Path(tmp) / "probe.html"
        doc.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        with tempfile.TemporaryDirectory(prefix="mse-chromium-") as profile:
            dom = subprocess.run(
                [
                    chromium,
                    *FLAGS,
                    f"--window-size={PRINT_WIDTH_PX},1000",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    f"--user-data-dir={profile}",
                    doc.as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            ).stdout
    import html as _html
    import re

    m = re.search(r'<pre id="mse-probe">(.*?)</pre>', dom, flags=re.S)
    if m is None:
        raise RuntimeError(f"{Path(page).name}: the print check did not run")
    return [_html.unescape(line) for line in m.group(1).splitlines() if line.strip()]


def _trim_blank_bottom(png: Path) -> int:
    """Cut the white rows below the content off a PNG; return the new height."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB"))
    ink = np.flatnonzero((rgb < 250).any(axis=(1, 2)))
    bottom = int(ink[-1]) + 16 if len(ink) else rgb.shape[0]
    bottom = min(bottom, rgb.shape[0])
    Image.fromarray(rgb[:bottom]).save(png)
    return bottom
