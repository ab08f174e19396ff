"""`python cli.py dashboard` serves optuna-dashboard on the study storage and stops on Ctrl-C
(`search --dashboard` is tested with the end-to-end search)."""
import signal
import subprocess
import sys
import time

import optuna

from conftest import ROOT, free_port, studies_served


def test_dashboard_serves_the_studies_and_stops_cleanly(studies):
    studies.mkdir()
    storage = f"sqlite:///{studies / 'vggsearch.db'}"
    optuna.create_study(study_name="watched", storage=storage).optimize(lambda t: 1.0, n_trials=2)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "dashboard", "--port",
                               str(port), "--studies-dir", str(studies)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert studies_served(port, time.time() + 60, server) == ["watched"]
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in stderr
    assert "Traceback" not in stderr and server.returncode in (0, 130), stderr
