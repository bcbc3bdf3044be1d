"""Data preparation (docs/method.md 3.1-3.5): counting rules, partial records, linking, the stage."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mse_helpers import seeds
from mse_helpers.runner.params import load_params
from mse_helpers.stages import inputs, prepare

FIX = Path(__file__).parent / "fixtures"
MAP = FIX / "prep_register_map.csv"
RULES = FIX / "prep_reports_rules.csv"


class WithOptions:
    """Params plus the reading options Params does not hold yet (prepare.read_options)."""

    def __init__(self, p, **options):
        self._p = p
        self.__dict__.update(options)

    def __getattr__(self, name):
        return getattr(self._p, name)


def _params(min_persons_per_year=1, **over):
    # the fixtures hold a handful of persons per year: no minimum, unless a test sets one
    base = dict(reports=str(RULES), aggregates=None, register_map=str(MAP), truth=None)
    base.update(over)
    return WithOptions(load_params(None, base), min_persons_per_year=min_persons_per_year)


@pytest.fixture(scope="module")
def records_by_key():
    rmap = inputs.read_register_map(MAP)
    mapped = prepare.map_registers(inputs.read_reports(RULES, rmap), rmap)
    records, episodes = prepare.person_records(mapped, 365)
    key = episodes.groupby("record")["person_key"].first()
    records = records.assign(key=records.index.map(key))
    return records, episodes


def _one(records, key):
    rows = records[records["key"] == key]
    assert len(rows) == 1, (key, len(rows))
    return rows.iloc[0]


def _regs(row):
    return "".join(g for g in "IKOPRZ" if row[g] == 1)


def test_december_then_january_counts_once_in_first_year(records_by_key):
    r = _one(records_by_key[0], "dec_jan")
    assert r["year"] == 2016 and _regs(r) == "PR"


def test_same_register_twice_counts_once(records_by_key):
    r = _one(records_by_key[0], "twice")
    assert _regs(r) == "P" and r["n_reports"] == 2


def test_excluded_organisations_are_dropped_before_the_year(records_by_key):
    records = records_by_key[0]
    assert _one(records, "emm_first")["year"] == 2016
    r = _one(records, "ind_dec")
    assert r["year"] == 2017 and _regs(r) == "I"
    assert "only_emm" not in set(records["key"])


def test_conflicting_sex_majority_tie_and_count(records_by_key):
    records = records_by_key[0]
    r = _one(records, "sex_conflict")
    assert r["S"] == "F" and bool(r["conflict_S"])
    t = _one(records, "sex_tie")
    assert t["S"] == "M" and bool(t["conflict_S"])  # tie: the earliest report (M)
    assert not bool(_one(records, "dec_jan")["conflict_S"])


def test_age_exploitation_and_missing(records_by_key):
    records = records_by_key[0]
    ageing = _one(records, "ageing")
    assert ageing["L"] == "M" and not bool(ageing["conflict_L"])
    conflict = _one(records, "age_conflict")
    assert conflict["L"] == "M" and bool(conflict["conflict_L"])
    unk = _one(records, "expl_unknown")
    assert pd.isna(unk["U"]) and pd.isna(unk["S"]) and pd.isna(unk["L"]) and unk["N"] == "O"
    assert _one(records, "sex_tie")["U"] == "S"  # sexual in any report
    assert _one(records, "twice")["U"] == "O"
    assert bool(_one(records, "sex_tie")["conflict_U"])  # sexual;labour and labour only


def test_report_after_window_opens_a_later_record(records_by_key):
    records = records_by_key[0]
    rows = records[records["key"] == "late_window"].sort_values("year")
    assert list(rows["year"]) == [2016, 2017]
    assert [_regs(r) for _, r in rows.iterrows()] == ["P", "R"]


def test_short_window_same_year_report_is_counted_not_lost():
    rmap = inputs.read_register_map(MAP)
    mapped = prepare.map_registers(inputs.read_reports(RULES, rmap), rmap)
    records, episodes = prepare.person_records(mapped, 30)
    # twice: 61 days and age_conflict: 31 days later in the same year -> outside the window;
    # ageing (Nov then Feb) and late_window start a record in the next year instead
    late = episodes[~episodes["in_window"]]
    assert sorted(late["person_key"]) == ["age_conflict", "twice"]
    assert len(records[records["year"] == 2018]) == 1
    # dec_jan (21 days) still one person on P and R
    assert (episodes.loc[episodes["person_key"] == "dec_jan", "in_window"]).all()


def test_run_stage_writes_files_and_counts(tmp_path):
    p = _params(years="2016-2017")
    work = tmp_path / "work"
    res = prepare.run_stage(p, work)
    persons = pd.read_parquet(work / "persons.parquet")
    assert list(persons.columns) == ["year", "I", "K", "O", "P", "R", "Z", "S", "L", "N", "U", "source"]
    assert str(persons["P"].dtype) == "Int8" and persons["source"].eq("reports").all()
    assert "person_key" not in persons.columns and "report_id" not in persons.columns
    # persons: 2016 dec_jan twice emm_first sex_conflict sex_tie late_window age_conflict = 7
    #          2017 ind_dec late_window expl_unknown ageing = 4; 'early' is 2015
    assert persons.groupby("year").size().to_dict() == {2016: 7, 2017: 4}
    s = json.loads((work / "prep_summary.json").read_text())
    assert s["years"] == [2016, 2017] and s["reference_years"] == []
    c = s["counts_per_year"]
    assert c["2015"]["reports_outside_years"] == 1 and c["2015"]["reports_read"] == 1
    assert c["2016"]["reports_excluded"] == 3 and c["2016"]["conflicts_S"] == 2
    assert c["2016"]["missing_U"] == 1  # sex_conflict: exploitation stated nowhere but 'unknown'
    assert res.quality.loc[2017, "persons"] == 4


def test_left_out_register_drops_and_counts_persons(tmp_path):
    p = _params(years="2016-2017", registers=["I", "K", "O", "P", "Z"])
    res = prepare.run_stage(p, tmp_path / "w")
    assert "R" not in res.persons.columns
    c = res.summary["counts_per_year"]
    assert c["2017"]["persons_dropped_registers"] == 1  # late_window's 2017 record: R only
    assert c["2016"]["persons"] == 7 and c["2017"]["persons"] == 3


def test_bad_input_writes_nothing(tmp_path):
    p = _params(reports=str(FIX / "prep_reports_bad.csv"), aggregates=str(FIX / "prep_aggregates_bad.csv"))
    with pytest.raises(inputs.InputError) as err:
        prepare.run_stage(p, tmp_path / "w")
    files = {Path(v.file).name for v in err.value.violations}
    assert files == {"prep_reports_bad.csv", "prep_aggregates_bad.csv"}  # both files at once
    assert not (tmp_path / "w").exists()


def test_fairwork_example_partial_records():
    row = pd.read_csv(FIX / "prep_aggregates_fairwork.csv").iloc[0]
    part = prepare.partial_records_of_row(row, "O", list("IKOPRZ"), list("SLNU"))
    assert len(part) == 210
    assert (part["O"] == 1).all() and part[list("IKPRZ")].isna().all().all()
    assert part["S"].isna().all() and (part["N"] == "O").all() and (part["U"] == "O").all()
    assert part["L"].value_counts().to_dict() == {"A": 207, "M": 3}
    assert (part["source"] == "aggregate").all()


def test_partial_records_unknowns_and_register_left_out():
    rmap = inputs.read_register_map(MAP)
    agg = pd.DataFrame(
        [
            dict(
                year=2018,
                organisation="Regio",
                total=10,
                sex_F=7,
                sex_M=1,
                age_minor=0,
                age_adult=6,
                nat_NL=0,
                nat_other=0,
                expl_sexual=5,
                expl_other=5,
            ),
            dict(
                year=2018,
                organisation="Shelter",
                total=4,
                sex_F=0,
                sex_M=0,
                age_minor=0,
                age_adult=0,
                nat_NL=0,
                nat_other=0,
                expl_sexual=0,
                expl_other=0,
            ),
        ]
    )
    part, counts = prepare.partial_records(agg, rmap, list("IKOPRZ"), list("SLNU"))
    regio = part[part["R"] == 1]
    # S has 2 unknown, L 4 unknown, U 0 unknown but not constant -> U assigned (fewest unknowns)
    assert regio["U"].value_counts().to_dict() == {"S": 5, "O": 5}
    assert regio["S"].isna().all() and regio["L"].isna().all()
    assert len(part[part["O"] == 1]) == 4 and part.loc[part["O"] == 1, list("SLNU")].isna().all().all()
    part2, counts2 = prepare.partial_records(agg, rmap, list("IKOPZ"), list("SLNU"))
    assert len(part2) == 4 and counts2["used"].tolist() == [False, True]


def _constructed(p_sex="F"):
    """Reference year 2016: 100 on O (50 O only, 30 O+P, 20 O+R); 2018: 10 on O only,
    200 P only (sex p_sex), 200 R only (sex missing), 90 partial O records (sex F)."""

    def people(n, year, o, p, r, sex):
        return pd.DataFrame(
            {
                "year": year,
                "I": 0,
                "K": 0,
                "O": o,
                "P": p,
                "R": r,
                "Z": 0,
                "S": sex,
                "L": "A",
                "N": "O",
                "U": "O",
                "source": "reports",
            },
            index=range(n),
        )

    persons = pd.concat(
        [
            people(50, 2016, 1, 0, 0, "F"),
            people(30, 2016, 1, 1, 0, "F"),
            people(20, 2016, 1, 0, 1, "F"),
            people(10, 2018, 1, 0, 0, "F"),
            people(200, 2018, 0, 1, 0, p_sex),
            people(200, 2018, 0, 0, 1, None),
        ],
        ignore_index=True,
    )
    for g in "IKOPRZ":
        persons[g] = persons[g].astype("Int8")
    for c in "SLNU":
        persons[c] = persons[c].astype("string")
    persons["source"] = persons["source"].astype("string")
    partial = persons.iloc[:90].copy()
    partial["year"] = 2018
    for g in "IKPRZ":
        partial[g] = pd.array([pd.NA] * 90, dtype="Int8")
    partial["O"] = pd.array([1] * 90, dtype="Int8")
    partial["L"] = pd.array([pd.NA] * 90, dtype="string")
    partial["source"] = "aggregate"
    return persons, partial.reset_index(drop=True)


def test_linking_reproduces_the_reference_distribution():
    persons, partial = _constructed()
    before = persons.copy()
    out = prepare.link_partial_records(persons, partial, [2016], seeds.rng(1, "link", 0), targets="expected")
    pd.testing.assert_frame_equal(persons, before)  # pure
    o18 = out[(out["year"] == 2018) & (out["O"] == 1)]
    pattern = o18[["P", "R"]].astype(int).astype(str).agg("".join, axis=1).value_counts().to_dict()
    # T = 10 + 90 = 100 -> 50 O only, 30 O+P, 20 O+R
    assert pattern == {"00": 50, "10": 30, "01": 20}
    assert out["source"].value_counts().to_dict() == {"reports": 510 - 50, "linked": 50, "aggregate": 40}
    assert len(out) == len(persons) + 40
    assert out[list("IKOPRZ")].notna().all().all()
    # R-only persons had sex missing: the 20 linked ones got F from the record
    linked_r = out[(out["source"] == "linked") & (out["R"] == 1)]
    assert len(linked_r) == 20 and (linked_r["S"] == "F").all()
    assert out.loc[(out["source"] == "reports") & (out["R"] == 1) & (out["year"] == 2018), "S"].isna().all()


def test_linking_respects_covariates_and_seed():
    persons, partial = _constructed(p_sex="M")  # P persons contradict the records' sex F
    out = prepare.link_partial_records(persons, partial, [2016], seeds.rng(1, "link", 0), targets="expected")
    o18 = out[(out["year"] == 2018) & (out["O"] == 1)]
    assert int((o18["P"] == 1).sum()) == 0 and int((o18["R"] == 1).sum()) == 20
    a = prepare.link_partial_records(*_constructed(), [2016], seeds.rng(1, "link", 0))
    b = prepare.link_partial_records(*_constructed(), [2016], seeds.rng(1, "link", 0))
    c = prepare.link_partial_records(*_constructed(), [2016], seeds.rng(1, "link", 1))
    pd.testing.assert_frame_equal(a, b)
    linked = lambda f: set(f.index[(f["source"] == "linked")])
    assert linked(a) != linked(c)  # another stream picks other persons


def test_drawn_targets_have_the_posterior_predictive_mean_and_spread():
    # Dirichlet(counts + 1/2) then Multinomial(T): mean T a_p / a0, variance
    # T pi (1 - pi) (T + a0) / (1 + a0) (Dirichlet-multinomial); a0 = sum of a.
    counts = pd.Series({"00": 50, "01": 20, "10": 30})
    rng = np.random.default_rng(7)
    draws = pd.DataFrame([prepare.pattern_targets(counts, 100, "draw", rng) for _ in range(4000)])
    assert (draws.sum(axis=1) == 100).all()
    alpha = counts + 0.5
    pi = alpha / alpha.sum()
    a0 = alpha.sum()
    np.testing.assert_allclose(draws.mean(), 100 * pi, atol=0.5)
    np.testing.assert_allclose(draws.var(), 100 * pi * (1 - pi) * (100 + a0) / (1 + a0), rtol=0.1)
    # the study's rule: the rounded expectation, the same every time
    assert prepare.pattern_targets(counts, 100, "expected", rng).to_dict() == {"00": 50, "01": 20, "10": 30}
    with pytest.raises(ValueError, match="linking targets"):
        prepare.pattern_targets(counts, 100, "random", rng)


def test_drawn_linking_varies_by_data_set_around_the_reference_distribution():
    patterns = []
    for i in range(200):
        out = prepare.link_partial_records(*_constructed(), [2016], seeds.rng(1, "link", i))
        o18 = out[(out["year"] == 2018) & (out["O"] == 1)]
        assert len(o18) == 100  # T is kept: every record is a person on O
        patterns.append(o18[["P", "R"]].astype(int).astype(str).agg("".join, axis=1).value_counts())
    table = pd.DataFrame(patterns).fillna(0)
    assert table["10"].nunique() > 5  # the counts differ between data sets
    # mean close to q(p) T = 30 / 20 (the prior pulls by less than 0.5)
    assert abs(table["10"].mean() - 30) < 1.5 and abs(table["01"].mean() - 20) < 1.5
    # sd near the Dirichlet-multinomial value for O+P: sqrt(100 .30 .70 (100+101.5)/102.5) = 6.4
    assert 5.0 < table["10"].std() < 8.0


def test_resolve_years():
    assert prepare.resolve_years([2016, 2017, 2018], [2018], None, None) == ([2016, 2017, 2018], [2016, 2017])
    assert prepare.resolve_years([2016, 2017], [], None, None) == ([2016, 2017], [])
    with pytest.raises(ValueError, match="reference_years"):
        prepare.resolve_years([2018, 2019], [2018], None, None)
    with pytest.raises(ValueError, match="not in the data"):
        prepare.resolve_years([2016, 2018], [2018], None, [2015])


def test_foreign_data_other_years_and_names(tmp_path):
    """Other years and organisation names through a custom map, no code change."""
    (tmp_path / "map.csv").write_text(
        "organisation,register,note\nPolice North,P,\nLabour Office,I,\n"
        "Care Hub,R,\nSafe House,O,\nCopy Desk,exclude,\n",
        encoding="utf-8",
    )
    rows = [
        ("a1", "x", "2021-12-30", "Police North"),
        ("a2", "x", "2022-01-03", "Care Hub"),
        ("a3", "y", "2022-05-01", "Labour Office"),
        ("a4", "z", "2023-03-03", "Copy Desk"),
        ("a5", "z", "2023-03-04", "Safe House"),
    ]
    rep = pd.DataFrame(rows, columns=["report_id", "person_key", "report_date", "organisation"])
    rep = rep.assign(sex="F", age="30", nationality="NL", exploitation="sexual")
    rep.to_csv(tmp_path / "rep.csv", index=False)
    (tmp_path / "agg.csv").write_text(
        "year,organisation,total,sex_F,sex_M,age_minor,age_adult,nat_NL,nat_other,expl_sexual,expl_other\n"
        "2023,Safe House,4,4,0,0,4,0,0,0,0\n",
        encoding="utf-8",
    )
    p = WithOptions(
        load_params(
            None,
            dict(
                reports=str(tmp_path / "rep.csv"),
                aggregates=str(tmp_path / "agg.csv"),
                register_map=str(tmp_path / "map.csv"),
                truth=None,
            ),
        ),
        min_persons_per_year=1,
    )
    res = prepare.run_stage(p, tmp_path / "w")
    assert res.summary["years"] == [2021, 2022, 2023] and res.summary["reference_years"] == [2021, 2022]
    assert res.persons.groupby("year").size().to_dict() == {2021: 1, 2022: 1, 2023: 1}
    assert len(res.partial) == 4 and (res.partial["S"] == "F").all()


def test_choose_years_minimum_persons_and_reference_years():
    counts = {2016: 80, 2017: 90, 2018: 2}
    choice = prepare.choose_years(counts, [2017], None, None, min_persons=50)
    assert choice.years == (2016, 2017) and choice.reference_years == (2016,)
    assert choice.left_out == ((2018, 2),) and choice.persons_left_out == 2
    with pytest.raises(prepare.YearsError) as err:
        prepare.choose_years(counts, [], [2015, 2016, 2018], None, min_persons=50)
    text = str(err.value)
    assert "2015 has no persons" in text and "2018 has 2 person(s)" in text and "--set years=2016-2017" in text
    assert len(err.value.problems) == 2  # both listed at once
    with pytest.raises(prepare.YearsError, match=r"reference_years: \[2018\] not among the analysed years"):
        prepare.choose_years(counts, [2017], [2016, 2017], [2018], min_persons=1)
    with pytest.raises(prepare.YearsError, match="no year has at least 100 persons"):
        prepare.choose_years(counts, [], None, None, min_persons=100)
    assert prepare.years_text([2016, 2017, 2018]) == "2016-2018" and prepare.years_text([2016, 2018]) == "2016,2018"


def test_read_options_default_and_override():
    p = _params()
    assert prepare.read_options(p._p) == prepare.ReadOptions(None, None, prepare.MIN_PERSONS_PER_YEAR)
    assert prepare.read_options(WithOptions(p._p, separator=";", encoding="cp1252")).separator == ";"


def test_stray_year_is_left_out_with_a_note(tmp_path):
    p = _params(min_persons_per_year=2)  # 2015 has one person ('early')
    res = prepare.run_stage(p, tmp_path / "w")
    assert 2015 not in res.summary["years"] and {"year": 2015, "persons": 1} in res.summary["years_left_out"]
    assert any(n.startswith("years left out: 2015 (1 person)") for n in res.summary["notes"])
    assert res.summary["files_read"]["reports"] == [{"file": "prep_reports_rules.csv", "rows": 22}]


# --- re-reports across years (docs/method.md 3.2) -------------------------------------------

RE_REPORTS = """report_id,person_key,report_date,organisation,sex,age,nationality,exploitation
a1,a,2019-10-15,Politie A,F,25,NL,sexual
a2,a,2020-02-10,Regio,F,25,NL,sexual
b1,b,2019-11-01,Politie A,M,30,RO,labour
b2,b,2020-03-01,Politie B,M,30,RO,labour
c1,c,2019-12-01,Regio,F,22,NG,sexual
c2,c,2020-01-05,EMM,F,22,NG,sexual
d1,d,2019-03-01,Politie A,M,40,SY,labour
d2,d,2020-06-01,KMar,M,41,SY,labour
e1,e,2019-01-10,Politie A,F,19,NL,sexual
e2,e,2019-12-20,Regio,F,19,NL,sexual
f1,f,2020-05-01,Shelter,F,33,BG,sexual
g1,g,2020-12-01,Other,M,45,PL,labour
i1,i,2019-12-15,Politie A,F,28,NL,sexual
"""


def _re_reports_file(tmp_path, until=None):
    lines = RE_REPORTS.strip().splitlines()
    if until:
        lines = lines[:1] + [ln for ln in lines[1:] if ln.split(",")[2] <= until]
    path = tmp_path / f"re_reports_{until or 'all'}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_re_reports_across_the_year_boundary_and_after_the_window(tmp_path):
    res = prepare.build(_params(reports=str(_re_reports_file(tmp_path)), years="2019-2020"))
    rr = res.summary["re_reports"]
    # a (P then R) and b (P then P) span 2019 -> 2020 and count in 2019; c's 2020 report is excluded
    # (EMM); e's second report is in the same year; only a gained a register from the 2020 report
    assert rr["across_year_boundary"] == [{"year": 2019, "later_year": 2020, "persons": 2, "gained_register": 1}]
    # d: 458 days after the first report -> a new person in 2020
    assert rr["reported_again_after_window"] == [{"first_year": 2019, "year": 2020, "persons": 1}]
    # newest report 2020-12-01: i (2019-12-15) and d's 2020 record, f, g still have open windows
    assert rr["newest_report"] == "2020-12"
    assert rr["window_open_at_end"] == [{"year": 2019, "persons": 1}, {"year": 2020, "persons": 3}]
    assert res.summary["counts_per_year"]["2019"]["persons"] == 6  # a b c d e i
    assert res.summary["counts_per_year"]["2020"]["persons"] == 3  # d (again) f g
    notes = res.summary["notes"]
    assert any(
        n.startswith("re-reports across the year boundary: 2 person(s)")
        and "counted in 2019" in n
        and "1 of them on a register only through the 2020 reports" in n
        for n in notes
    )
    assert any(
        n.startswith("re-reports after the window: 1 person(s)") and "2020: 1 (first counted in 2019)" in n
        for n in notes
    )
    assert any(n.startswith("open linkage windows: 4 person(s)") for n in notes)


def test_re_reports_register_gained_only_on_chosen_registers(tmp_path):
    # without register R, a's 2020 report (Regio, R) adds nothing
    res = prepare.build(
        _params(reports=str(_re_reports_file(tmp_path)), years="2019-2020", registers=["I", "K", "O", "P", "Z"])
    )
    span = res.summary["re_reports"]["across_year_boundary"]
    assert span == [{"year": 2019, "later_year": 2020, "persons": 2, "gained_register": 0}]


def test_re_run_with_next_year_revises_the_previous_year(tmp_path):
    # the 2019 run (data to 2019-12-31), then a re-run with the 2020 delivery added
    first = prepare.build(_params(reports=str(_re_reports_file(tmp_path, until="2019-12-31")), years="2019"))
    again = prepare.build(_params(reports=str(_re_reports_file(tmp_path)), years="2019-2020"))
    p19, p19b = first.persons, again.persons[again.persons["year"] == 2019]
    assert len(p19) == len(p19b) == 6  # the same persons in 2019 ...

    def multi(frame):
        return int((frame[list("IKOPRZ")].sum(axis=1) >= 2).sum())

    assert multi(p19) == 1 and multi(p19b) == 2  # ... but a is now on P and R: 2019's overlap revised up
    assert int(p19b["R"].sum()) == int(p19["R"].sum()) + 1
    assert first.summary["re_reports"]["across_year_boundary"] == []
    # the 2020 reports name five persons (a b d f g), but a and b count in 2019
    reports_2020 = again.reports[
        (again.reports["report_date"].dt.year == 2020) & (again.reports["register"] != "exclude")
    ]
    assert reports_2020["person_key"].nunique() == 5 and (again.persons["year"] == 2020).sum() == 3


def test_re_reports_notes_reach_the_data_decisions(tmp_path):
    from mse_helpers.report import text

    res = prepare.build(_params(reports=str(_re_reports_file(tmp_path)), years="2019-2020"))
    md = text.data_decisions(res.summary, res.register_map, _params())
    assert "Note: re-reports across the year boundary: 2 person(s)" in md
    assert "person_key" not in md and ",a," not in md
