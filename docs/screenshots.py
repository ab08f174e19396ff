"""The README's screenshots: optuna-dashboard on a finished study and the study's HTML report, taken
in Debian's headless Chromium with the browser tests' driver.

    python docs/screenshots.py --study mnist --studies-dir studies

writes docs/dashboard.png (the study's page), docs/dashboard_trials.png (its trials),
docs/dashboard_note.png (the note vggsearch writes) and docs/report.png (`report --html`).
"""
import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium, page_text  # noqa: E402
from conftest import free_port, studies_served  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--studies-dir", default="studies")
    args = parser.parse_args()
    cli = [sys.executable, str(ROOT / "cli.py")]

    page = Path(tempfile.mkdtemp()) / "report.html"
    subprocess.run([*cli, "report", "--study", args.study, "--html", str(page), "--studies-dir",
                    args.studies_dir], check=True, cwd=ROOT)
    port = free_port()
    server = subprocess.Popen([*cli, "dashboard", "--port", str(port), "--studies-dir",
                               args.studies_dir], cwd=ROOT)
    try:
        assert args.study in studies_served(port, time.time() + 60, server), args.study
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as answer:
            study_id = next(s["study_id"] for s in json.load(answer)["study_summaries"]
                            if s["study_name"] == args.study)
        study_url = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
        with chromium() as browser:
            for url, expected, name in [(study_url, "History", "dashboard.png"),
                                        (f"{study_url}/trials", "Trials", "dashboard_trials.png"),
                                        (f"{study_url}/note", "Test set", "dashboard_note.png"),
                                        (page.as_uri(), "Optimization History", "report.png")]:
                page_text(browser, url, expected)
                time.sleep(2)  # let the plots finish drawing
                browser.save_screenshot(str(DOCS / name))
                print(DOCS / name)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
