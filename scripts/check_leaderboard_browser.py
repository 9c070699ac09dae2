"""Check the leaderboard page in a real headless browser (Chromium): load, sort, filter, screenshot.

Loads ``leaderboard/index.html`` from disk in headless Chromium, takes the DOM *after* the page's
scripts ran, and checks that (1) every ``table.board`` row matches ``leaderboard/leaderboard.json``
(release, entry, rank, in order) and every chance/reference row is there, (2) every plot image
loaded in the browser (the page marks ``body[data-images-loaded|failed]`` on load), (3) the page's
own script sorts and filters: loaded as ``index.html#sort=transfer:asc&filter=<text>`` it must
show only the entries whose name or architecture contains the text, ordered by transfer
ascending, with the header marked ``aria-sort``, and (4) a screenshot of that sorted, filtered
view was written and is a PNG. The sort and filter go through the URL hash, the page's
shareable state, so no browser automation library is needed.
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
from urllib.parse import quote

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
    # A throwaway profile keeps runs independent; the virtual-time budget lets onload scripts run;
    # no network: the page must work from disk alone.
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", "--disable-background-networking", "--disable-extensions",
               "--disable-sync", "--no-default-browser-check", f"--user-data-dir={profile}",
               "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _expected_sorted(expected: dict, text: str) -> list[tuple[str, str]]:
    """(release, entry) of the rows a filter on ``text`` keeps, sorted by transfer ascending (missing
    values last, ties in board order), as the page must show them."""
    out = []
    for rel in expected["releases"]:
        kept = [(i, row) for i, row in enumerate(rel["rows"])
                if text.lower() in f"{row['entry']} {row['architecture']}".lower()]
        kept.sort(key=lambda item: (item[1]["scores"]["transfer"]["mean"] is None,
                                    item[1]["scores"]["transfer"]["mean"] or 0.0, item[0]))
        out += [(rel["slug"], row["entry"]) for _, row in kept]
    return out


def check_page(page: Path, board_json: Path, screenshot: Path, browser: str, timeout: float = 120.0,
               filter_text: str | None = None) -> list[str]:
    """Problems found by loading ``page`` in ``browser``; empty when the page is right.

    ``filter_text`` (default: the architecture of the first entry) is typed into the page's filter
    through the URL hash, together with a sort by transfer ascending.
    """
    sys.path.insert(0, str(REPO))
    from benchmark.leaderboard import parse_html

    problems: list[str] = []
    expected = json.loads(board_json.read_text(encoding="utf-8"))
    rows = [row for rel in expected["releases"] for row in rel["rows"]]
    if filter_text is None:
        filter_text = rows[0]["architecture"] if rows else "x"
    url = page.resolve().as_uri()
    view = f"{url}#sort=transfer:asc&filter={quote(filter_text)}"
    with tempfile.TemporaryDirectory(prefix="mb-chromium-") as profile:
        dom = _headless(browser, profile, "--dump-dom", url, timeout=timeout)
        if dom.returncode != 0 or "<table" not in dom.stdout and "no-results" not in dom.stdout:
            return [f"browser could not load {url} (exit {dom.returncode}): {dom.stderr.strip()[-500:]}"]
        sorted_dom = _headless(browser, profile, "--dump-dom", view, timeout=timeout)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = _headless(browser, profile, f"--screenshot={screenshot.resolve()}", "--window-size=1400,2400", view,
                         timeout=timeout)
    parsed = parse_html(dom.stdout)
    want = [(rel["slug"], row["entry"], "" if row["rank"] is None else str(row["rank"]))
            for rel in expected["releases"] for row in rel["rows"]]
    got = [(r["release"], r["entry"], r["rank"]) for r in parsed["rows"]]
    if got != want:
        problems.append(f"table rows in the browser {got} differ from {board_json.name} {want}")
    short = [r["entry"] for r in parsed["rows"] if len(r["cells"]) != len(expected["columns"])]
    if short:
        problems.append(f"rows without {len(expected['columns'])} cells: {short}")
    want_anchors = [(rel["slug"], a["entry"]) for rel in expected["releases"] for a in rel["anchors"]]
    got_anchors = [(r["release"], r["entry"]) for r in parsed["anchors"]]
    if got_anchors != want_anchors:
        problems.append(f"chance/reference rows in the browser {got_anchors} differ from {want_anchors}")
    if parsed["body"].get("data-ready") != "1":
        problems.append("the page's script did not run (no body[data-ready])")
    n_images = len(parsed["images"])
    loaded, failed = parsed["body"].get("data-images-loaded"), parsed["body"].get("data-images-failed")
    if loaded is None:
        problems.append("the page's onload script did not run (no body[data-images-loaded])")
    elif (int(loaded), int(failed or 0)) != (n_images, 0):
        problems.append(f"{failed} of {n_images} plot images failed to load in the browser")
    view_parsed = parse_html(sorted_dom.stdout)
    shown = [(r["release"], r["entry"]) for r in view_parsed["rows"] if not r["hidden"]]
    if shown != _expected_sorted(expected, filter_text):
        problems.append(f"sorted by transfer and filtered on {filter_text!r}, the browser shows {shown}, expected "
                        f"{_expected_sorted(expected, filter_text)}")
    marked = {h["sort"] for h in view_parsed["headers"] if h["key"] == "transfer"}
    if rows and marked != {"ascending"}:
        problems.append(f"the transfer header is not marked aria-sort=ascending after sorting (got {marked})")
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
    parser.add_argument("--filter", default=None, help="text to filter the table on (default: the first entry's "
                                                        "architecture)")
    args = parser.parse_args(argv)
    browser = args.browser or find_browser()
    if browser is None:
        print("no Chromium found; install it with `apt-get install -y chromium` or set $CHROMIUM", file=sys.stderr)
        return 2
    if not args.page.is_file():
        print(f"page not found: {args.page}; run `metamer-bench leaderboard` first", file=sys.stderr)
        return 2
    problems = check_page(args.page, args.json or args.page.with_name("leaderboard.json"), args.screenshot, browser,
                          filter_text=args.filter)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    rows = len(json.loads((args.json or args.page.with_name("leaderboard.json")).read_text())["releases"])
    print(f"browser check passed: {args.page} ({rows} release table(s)); screenshot {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
