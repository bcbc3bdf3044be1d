"""Parameter validation: every rule names the key it checks."""

from pathlib import Path

import pytest
import yaml

from mse_helpers.runner.params import ParameterError, load_params, parse_set, read_params_file


@pytest.fixture
def inputs(tmp_path):
    """Existing (empty) input files: the parameter checks only need them to exist."""
    files = {}
    for key in ("reports", "aggregates", "register_map", "truth"):
        f = tmp_path / f"{key}.csv"
        f.write_text("x\n")
        files[key] = str(f)
    return files


def test_defaults_plus_overrides(inputs):
    p = load_params(None, {**inputs, "m": 5, "years": "2016-2018", "registers": "I,K,O,P"})
    assert p.m == 5
    assert p.years == (2016, 2017, 2018)
    assert p.registers == ("I", "K", "O", "P")
    assert p.covariates == ("S", "L", "N", "U")
    assert p.interval == "log-scale" and p.interval_asked == "auto"  # interval: auto under uncertainty: boot-impute
    assert p.linking == "draw"
    assert isinstance(p.reports, Path) and p.reports.is_absolute()


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("m", "abc", "parameter m: must be a whole number"),
        ("m", True, "parameter m: must be a whole number"),
        ("m", 0, "parameter m: must be from 1"),
        ("maxit", 2.5, "parameter maxit"),
        ("bootstrap", 1, "parameter bootstrap"),
        ("seed", -1, "parameter seed"),
        ("n_jobs", 0, "parameter n_jobs"),
        ("interval", "wald", "parameter interval"),
        ("linking", "fixed", "parameter linking"),
        ("registers", ["P"], "parameter registers: needs at least 2"),
        ("registers", ["P", "X"], "parameter registers: unknown code"),
        ("covariates", ["S", "S"], "parameter covariates: a code is listed twice"),
        ("years", "2019-2016", "parameter years: range"),
        ("years", "abc", "parameter years"),
        ("linkage_window_days", -3, "parameter linkage_window_days"),
        ("reference_years", [2016, 2016], "parameter reference_years"),
    ],
)
def test_bad_values_name_the_key(inputs, key, value, fragment):
    with pytest.raises(ParameterError, match=fragment.replace("(", r"\(")):
        load_params(None, {**inputs, key: value})


def test_unknown_key(inputs):
    with pytest.raises(ParameterError, match="unknown parameter.*colour"):
        load_params(None, {**inputs, "colour": "red"})


def test_missing_input_file_names_key_and_file(inputs, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ParameterError, match=f"parameter reports: input file {missing} does not exist"):
        load_params(None, {**inputs, "reports": str(missing)})


def test_optional_inputs_may_be_null(inputs):
    p = load_params(None, {**inputs, "truth": None, "aggregates": None})
    assert p.truth is None and p.aggregates is None
    assert set(p.input_files()) == {"reports", "register_map"}


def test_params_file_paths_relative_to_file(tmp_path, inputs):
    sub = tmp_path / "mine"
    sub.mkdir()
    (sub / "my_reports.csv").write_text("x\n")
    (sub / "my.yaml").write_text("reports: my_reports.csv\nm: 7\n")
    raw = read_params_file(sub / "my.yaml")
    assert raw["reports"] == str((sub / "my_reports.csv").resolve())
    p = load_params(sub / "my.yaml", {k: v for k, v in inputs.items() if k != "reports"})
    assert p.m == 7 and p.reports == (sub / "my_reports.csv").resolve()


def test_params_file_not_a_mapping(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="bad.yaml: must be a mapping"):
        read_params_file(f)


def test_parse_set_reads_yaml_values():
    out = parse_set(["m=5", "years=[2016, 2017]", "interval=log-scale", "truth="])
    assert out == {"m": 5, "years": [2016, 2017], "interval": "log-scale", "truth": None}
    with pytest.raises(ParameterError, match="expected key=value"):
        parse_set(["m5"])


def test_to_dict_round_trip(inputs):
    p = load_params(None, {**inputs, "years": [2017, 2016]})
    assert load_params(None, p.to_dict()) == p


# --- interval: auto -------------------------------------------------------------------------


def test_resolve_interval_chooses_by_uncertainty_and_keeps_explicit_values():
    from mse_helpers.engine.pooling import INTERVALS
    from mse_helpers.stages.uncertainty import resolve_interval

    assert resolve_interval("auto", "boot-impute") == "log-scale"
    assert resolve_interval("auto", "reselect") == "log-scale"
    assert resolve_interval("auto", "study") == "rubin-t"
    for method in ("study", "reselect", "boot-impute"):
        for interval in INTERVALS:
            assert resolve_interval(interval, method) == interval
    with pytest.raises(ValueError, match="parameter interval: must be one of auto, rubin-t"):
        resolve_interval("wald", "study")
    with pytest.raises(ValueError, match="parameter uncertainty"):
        resolve_interval("auto", "bootstrap-all")


def test_interval_auto_is_the_default_and_resolved_once_for_every_consumer(inputs):
    p = load_params(None, inputs)
    assert (p.interval_asked, p.uncertainty, p.interval) == ("auto", "boot-impute", "log-scale")
    study = load_params(None, {**inputs, "uncertainty": "study"})
    assert (study.interval_asked, study.interval) == ("auto", "rubin-t")
    # explicit values stay as they are, with either method
    for method, interval in [("reselect", "rubin-t"), ("reselect", "log-scale"), ("study", "log-scale")]:
        q = load_params(None, {**inputs, "uncertainty": method, "interval": interval})
        assert q.interval == q.interval_asked == interval
    assert load_params(None, {**inputs, "uncertainty": "study", "interval": "profile"}).interval == "profile"
    # auto is never refused; reselect with an explicit profile still is
    assert load_params(None, {**inputs, "uncertainty": "study", "interval": "auto"}).interval == "rubin-t"
    with pytest.raises(ParameterError, match="parameters uncertainty and interval"):
        load_params(None, {**inputs, "interval": "profile"})
    with pytest.raises(ParameterError, match="parameter interval: must be one of auto, rubin-t, log-scale, profile"):
        load_params(None, {**inputs, "interval": "wald"})


def test_params_yaml_records_the_interval_asked_and_the_one_used(inputs, tmp_path, caplog):
    import dataclasses
    import logging

    p = load_params(None, inputs)
    d = p.to_dict()
    assert d["interval"] == "auto" and d["interval_used"] == "log-scale"
    assert list(d)[list(d).index("interval") + 1] == "interval_used"
    assert load_params(None, d) == p
    explicit = load_params(None, {**inputs, "interval": "log-scale"})
    assert explicit.to_dict()["interval"] == explicit.to_dict()["interval_used"] == "log-scale"
    assert explicit != p  # same interval, but the record says what was asked
    # a run's params.yaml read back with another method: interval_used is recomputed, never obeyed
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(d))
    with caplog.at_level(logging.INFO, logger="mse_helpers.runner.params"):
        again = load_params(f, {"uncertainty": "study"})
    assert (again.interval_asked, again.interval) == ("auto", "rubin-t")
    assert "interval_used: log-scale in the parameters records an earlier run; this run uses rubin-t" in caplog.text
    assert load_params(f) == p
    # a Params changed by hand records the interval it uses
    changed = dataclasses.replace(p, uncertainty="study")
    assert changed.interval == "log-scale" and changed.to_dict()["interval"] == "log-scale"
    # only the recorded key is accepted beside the parameters
    with pytest.raises(ParameterError, match="unknown parameter.*interval_use\\b"):
        load_params(None, {**inputs, "interval_use": "rubin-t"})


def test_sensitivity_analyses(inputs):
    p = load_params(None, {**inputs, "sensitivity": ["drop:K", "drop: S, L", "no-covariates"]})
    assert p.sensitivity == ("drop:K", "drop:S,L", "no-covariates")
    assert load_params(None, {**inputs, "sensitivity": []}).sensitivity == ()
    for bad in (["drop:X"], ["leave-out K"], [3], ["drop:K", "drop:K"]):
        with pytest.raises(ParameterError, match="parameter sensitivity"):
            load_params(None, {**inputs, "sensitivity": bad})


# --- configuration in one place ------------------------------------------------------------


def test_every_parameter_is_described_once_on_params():
    from mse_helpers.runner.params import FIELDS, SECTIONS

    for name, f in FIELDS.items():
        md = f.metadata
        assert md["meaning"] and md["kind"] and md["section"] in SECTIONS, name
        assert "../" not in md["meaning"], name  # nothing a user reads points outside the repository


def test_defaults_file_and_readme_table_are_generated_from_params():
    import importlib.util

    from mse_helpers.runner.params import DEFAULTS_FILE, FIELDS, PROJECT_ROOT, defaults_yaml, readme_table

    assert DEFAULTS_FILE.read_text(encoding="utf-8") == defaults_yaml(), "run python scripts/params_doc.py"
    assert readme_table() in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8"), (
        "run python scripts/params_doc.py"
    )
    spec = importlib.util.spec_from_file_location("params_doc", PROJECT_ROOT / "scripts" / "params_doc.py")
    doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc)
    assert doc.main(["--check"]) == 0
    # the file's values are the described defaults, key by key
    raw = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    assert list(raw) == list(FIELDS)
    assert raw == {k: f.metadata["default"] for k, f in FIELDS.items()}


def test_readme_table_is_replaced_as_a_block():
    import importlib.util

    from mse_helpers.runner.params import PROJECT_ROOT, readme_table

    spec = importlib.util.spec_from_file_location("params_doc", PROJECT_ROOT / "scripts" / "params_doc.py")
    doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc)
    stale = "intro\n\n| parameter | default |\n|---|---|\n| `m` | `3` |\n\nafter\n"
    out = doc.replace_table(stale, readme_table())
    assert out.startswith("intro\n\n| parameter | type |") and out.endswith("|\n\nafter\n")
    assert "| `m` | `3` |" not in out
    assert "| `m` | whole number, 1 to 1000 | `25` | completed data sets (multiple imputation) |" in out


def test_ranges_come_from_the_description(inputs):
    with pytest.raises(ParameterError, match="parameter m: must be from 1 to 1000, got 1001"):
        load_params(None, {**inputs, "m": 1001})
    with pytest.raises(ParameterError, match="parameter sensitivity_datasets: must be from 1 to 1000, got 0"):
        load_params(None, {**inputs, "sensitivity_datasets": 0})
    assert load_params(None, {**inputs, "sensitivity_datasets": None}).sensitivity_datasets is None


def test_truth_only_with_the_synthetic_parameters(tmp_path):
    from mse_helpers.runner.params import DEFAULTS_FILE

    p = load_params()
    assert p.truth is None
    assert p.reports == (DEFAULTS_FILE.parent / "reports.csv").resolve()
    synthetic = load_params("synthetic")
    assert synthetic.truth == (DEFAULTS_FILE.parent / "truth.csv").resolve()
    assert load_params(DEFAULTS_FILE.parent / "synthetic.yaml") == synthetic
    # a file of that name in the current folder wins over the bundled one
    (tmp_path / "synthetic").write_text("m: 3\n")
    assert load_params(tmp_path / "synthetic").truth is None


def test_sensitivity_datasets_is_recorded(tmp_path):
    from mse_helpers.runner.pipeline import initial_manifest

    p = load_params(None, {"sensitivity_datasets": 4})
    assert p.to_dict()["sensitivity_datasets"] == 4
    man = initial_manifest(p, tmp_path, ("01_data_preparation",))
    assert man["parameters"]["sensitivity_datasets"] == 4
    assert yaml.safe_load(yaml.safe_dump(p.to_dict()))["sensitivity_datasets"] == 4
