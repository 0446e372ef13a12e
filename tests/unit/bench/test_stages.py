"""``python -m bench.stages`` runs end to end on a few events and writes its JSON."""

from __future__ import annotations

import json

from bench import stages


def test_a_small_run_reports_every_stage(tmp_path, capsys) -> None:
    out = tmp_path / "stages.json"
    assert stages.main(["--events", "60", "--repeat", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["events"] == 60
    assert tuple(data["us_per_event"]) == stages.STAGES
    assert all(value > 0 for value in data["us_per_event"].values())
    assert data["entries"] > 0 and data["deltas_applied"] > 0
    printed = capsys.readouterr().out
    assert "total" in printed and "entry_encode" in printed
