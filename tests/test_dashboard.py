"""`python cli.py dashboard` serves optuna-dashboard on the study storage and stops on Ctrl-C."""
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import optuna

from conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_studies_and_stops_cleanly(studies):
    studies.mkdir()
    storage = f"sqlite:///{studies / 'vggsearch.db'}"
    optuna.create_study(study_name="watched", storage=storage).optimize(lambda t: 1.0, n_trials=2)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "dashboard", "--port",
                               str(port), "--studies-dir", str(studies)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.time() + 60, None
        while body is None and time.time() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.load(r)
            except OSError:
                time.sleep(0.3)
        assert body is not None, "the dashboard did not answer"
        assert [s["study_name"] for s in body["study_summaries"]] == ["watched"]
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in stderr
    assert "Traceback" not in stderr and server.returncode in (0, 130), stderr
