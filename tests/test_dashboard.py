"""`python cli.py dashboard` serves optuna-dashboard on the study storage and stops on Ctrl-C
(`search --dashboard` is tested with the end-to-end search)."""
import time

import optuna

from conftest import serving_dashboard, studies_served


def test_dashboard_serves_the_studies_and_stops_cleanly(studies):
    studies.mkdir()
    storage = f"sqlite:///{studies / 'vggsearch.db'}"
    optuna.create_study(study_name="watched", storage=storage).optimize(lambda t: 1.0, n_trials=2)
    with serving_dashboard("--studies-dir", studies) as (port, server):
        assert studies_served(port, time.time() + 60, server) == ["watched"]
    assert f"http://127.0.0.1:{port}/" in server.output
    assert "Traceback" not in server.output and server.returncode in (0, 130), server.output
