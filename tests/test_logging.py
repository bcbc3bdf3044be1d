"""The stages report their progress through `logging` (not print)."""

import logging
from pathlib import Path

from mse_helpers.runner.params import load_params
from mse_helpers.stages import prepare

PACKAGE = Path(prepare.__file__).parents[1]


def test_stages_log_instead_of_printing():
    for path in sorted((PACKAGE / "stages").glob("*.py")) + [PACKAGE / "runner" / "pipeline.py"]:
        assert "print(" not in path.read_text(encoding="utf-8"), path.name


def test_data_preparation_logs_its_result(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="mse_helpers"):
        res = prepare.run_stage(load_params(None, {"years": [2016, 2017]}), tmp_path / "work")
    (record,) = [r for r in caplog.records if r.name == "mse_helpers.stages.prepare"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"data preparation: {len(res.persons)} person records, {len(res.partial)} partial records, years [2016, 2017]"
    )
