"""A screenshot of the live run monitor after a build: docs/monitor.png.

    .venv/bin/pip install -e ".[bench]"        # playwright (the Python package only)
    apt-get install -y chromium                  # Debian's Chromium, driven as it is
    .venv/bin/python bench/monitor_screenshot.py [--out docs/monitor.png] [--work DIR]

It does what tests/test_monitor.py does: starts the monitor with `make monitor` on a free
127.0.0.1 port (database in a temporary folder), builds the built-in sample into a temporary
root with `--profile profiles/monitor`, and checks through panoptes' API that every job the
build ran is recorded as done. Then it opens the workflow's page in headless Chromium
(/usr/bin/chromium, no browser download) and saves the screenshot. The page links its
stylesheets and scripts from public CDNs; the browser is given none of them (only 127.0.0.1
is reached), so the page shows with panoptes' own stylesheet.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import (  # noqa: E402
    SAMPLE,
    finished_jobs,
    get_json,
    monitor_server,
    snakemake,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def screenshot(url: str, out: Path) -> None:
    """Save a full-page screenshot of ``url``, loading nothing from outside 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("http://127.0.0.1:")
                else route.abort()
            ),
        )
        page.goto(url, wait_until="load")
        # "disabled": the page fades in (a CSS animation); shoot it as it ends.
        page.screenshot(path=str(out), full_page=True, animations="disabled")
        browser.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "monitor.png")
    ap.add_argument("--work", type=Path, default=None, help="keep the build here (default: temp)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="monitor-shot-"))
    source = shutil.copytree(SAMPLE, work / "source", dirs_exist_ok=True)
    root = work / "lake"
    with monitor_server(work / "_monitor") as url:
        proc = snakemake(
            work,
            "--cores", "4", "--profile", str(REPO / "profiles/monitor"),
            "--logger-panoptes-address", url,
            config={"root": root, "source": source},
        )  # fmt: skip
        ran = finished_jobs(proc.stdout + proc.stderr)
        wf = get_json(f"{url}/api/workflows")["workflows"][-1]
        jobs = get_json(f"{url}/api/workflow/{wf['id']}/jobs")["jobs"]
        recorded = {(j["jobid"], j["name"]) for j in jobs if j["status"] == "Done"}
        if wf["status"] != "Done" or recorded != ran:
            print(f"monitor: workflow {wf['status']}, {len(recorded)} of {len(ran)} jobs done")
            return 1
        screenshot(f"{url}/workflow/{wf['id']}", args.out)
    print(f"{len(ran)} jobs recorded, workflow {wf['status']}; screenshot: {args.out}")
    if args.work is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
