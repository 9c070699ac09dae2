"""Check the leaderboard page in a real headless browser (Chromium): load, read rows, screenshot.

Loads ``leaderboard/index.html`` from disk in headless Chromium, takes the DOM *after* the page's
scripts ran, and checks that (1) every ``table.board`` row matches ``leaderboard/leaderboard.json``
(release, entry, rank, in order), (2) every plot image loaded in the browser (the page marks
``body[data-images-loaded|failed]`` on load), and (3) a screenshot was written and is a PNG.
Exits 0 when all hold, 1 listing the problems otherwise, 2 when no browser is found.

    python scripts/check_leaderboard_browser.py [--page leaderboard/index.html] [--screenshot OUT.png]

Install the browser on Debian with ``apt-get install -y chromium``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def find_browser() -> str | None:
    """Path of a Chromium-family browser (``$CHROMIUM`` first), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _headless(browser: str, profile: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    # A throwaway profile keeps runs independent; the virtual-time budget lets onload scripts run.
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def check_page(page: Path, board_json: Path, screenshot: Path, browser: str, timeout: float = 120.0) -> list[str]:
    """Problems found by loading ``page`` in ``browser``; empty when the page is right."""
    sys.path.insert(0, str(REPO))
    from benchmark.leaderboard import parse_html

    problems: list[str] = []
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="mb-chromium-") as profile:
        dom = _headless(browser, profile, "--dump-dom", url, timeout=timeout)
        if dom.returncode != 0 or "<table" not in dom.stdout and "no-results" not in dom.stdout:
            return [f"browser could not load {url} (exit {dom.returncode}): {dom.stderr.strip()[-500:]}"]
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = _headless(browser, profile, f"--screenshot={screenshot.resolve()}", "--window-size=1400,2400", url,
                         timeout=timeout)
    parsed = parse_html(dom.stdout)
    expected = json.loads(board_json.read_text(encoding="utf-8"))
    want = [(rel["slug"], row["entry"], "" if row["rank"] is None else str(row["rank"]))
            for rel in expected["releases"] for row in rel["rows"]]
    got = [(r["release"], r["entry"], r["rank"]) for r in parsed["rows"]]
    if got != want:
        problems.append(f"table rows in the browser {got} differ from {board_json.name} {want}")
    short = [r["entry"] for r in parsed["rows"] if len(r["cells"]) != len(expected["columns"])]
    if short:
        problems.append(f"rows without {len(expected['columns'])} cells: {short}")
    n_images = len(parsed["images"])
    loaded, failed = parsed["body"].get("data-images-loaded"), parsed["body"].get("data-images-failed")
    if loaded is None:
        problems.append("the page's onload script did not run (no body[data-images-loaded])")
    elif (int(loaded), int(failed or 0)) != (n_images, 0):
        problems.append(f"{failed} of {n_images} plot images failed to load in the browser")
    if shot.returncode != 0 or not screenshot.is_file():
        problems.append(f"no screenshot (exit {shot.returncode}): {shot.stderr.strip()[-500:]}")
    elif screenshot.read_bytes()[:8] != PNG_SIGNATURE or screenshot.stat().st_size < 10_000:
        problems.append(f"{screenshot} is not a plausible PNG screenshot ({screenshot.stat().st_size} bytes)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, default=REPO / "leaderboard" / "index.html")
    parser.add_argument("--json", type=Path, default=None, help="default: leaderboard.json next to the page")
    parser.add_argument("--screenshot", type=Path, default=Path(tempfile.gettempdir()) / "leaderboard-screenshot.png")
    parser.add_argument("--browser", default=None, help="browser binary (default: $CHROMIUM or chromium on PATH)")
    args = parser.parse_args(argv)
    browser = args.browser or find_browser()
    if browser is None:
        print("no Chromium found; install it with `apt-get install -y chromium` or set $CHROMIUM", file=sys.stderr)
        return 2
    if not args.page.is_file():
        print(f"page not found: {args.page}; run `metamer-bench leaderboard` first", file=sys.stderr)
        return 2
    problems = check_page(args.page, args.json or args.page.with_name("leaderboard.json"), args.screenshot, browser)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    rows = len(json.loads((args.json or args.page.with_name("leaderboard.json")).read_text())["releases"])
    print(f"browser check passed: {args.page} ({rows} release table(s)); screenshot {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
