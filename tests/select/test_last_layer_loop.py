"""The last-layer (LLPR) uncertainty in the loop: config, stored state, exploration, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_campaign

from frostline.config import ConfigError, parse_config
from frostline.select.uncertainty.calibration import fit_conformal
from frostline.select.uncertainty.last_layer import LLPR
from frostline.select.uncertainty.loop import (
    state_from_bytes,
    state_to_bytes,
    window_scales,
)
from frostline.store import StoreError


def test_bad_uncertainty_is_one_line_naming_the_field():
    with pytest.raises(ConfigError) as err:
        parse_config(tiny_campaign(select={"uncertainty": "laplace"}), source="c.yaml")
    message = str(err.value)
    assert "\n" not in message and "field 'select.uncertainty'" in message
    assert "'last-layer'" in message  # the allowed values are named
    with pytest.raises(ConfigError, match="use select.uncertainty: last-layer"):
        parse_config(tiny_campaign(finetune={"committee_size": 1}))


def test_last_layer_runs_with_one_model_or_scores_member_zero_of_a_committee():
    one = parse_config(
        tiny_campaign(finetune={"committee_size": 1}, select={"uncertainty": "last-layer"})
    )
    assert one.select.uncertainty == "last-layer"
    from frostline.config import SelectConfig

    first = SelectConfig(uncertainty="last-layer")  # raw LLPR scores have no scale: open window
    assert first.trust_lo < 1e-3 and first.trust_hi > 1e3
    two = parse_config(tiny_campaign(select={"uncertainty": "last-layer", "trust_lo": 0.5}))
    assert two.finetune.committee_size == 2 and two.select.trust_lo == 0.5
    from frostline.flows.active_learning import ActiveLearningMaker

    maker = ActiveLearningMaker.from_config(two, "mini")
    assert maker.explore.uncertainty == maker.select.uncertainty == "last-layer"
    assert maker.explore._members(_Result(["m0", "m1"])) == ["m0"]  # member 0 drives the MD


class _Result:
    def __init__(self, models):
        self.models = models


def test_llpr_state_round_trips_without_pickle():
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(4, 6)) for _ in range(5)]
    symbols = [["Cu", "Cu", "H", "H"]] * 5
    llpr = LLPR("atoms", 1e-4).fit(features, symbols)
    again = state_from_bytes(state_to_bytes(llpr))
    assert (again.covariance, again.regularizer, again.n_train) == ("atoms", 1e-4, 5)
    probe = rng.normal(size=(4, 6))
    assert np.array_equal(
        again.atom_variances(probe, symbols[0]), llpr.atom_variances(probe, symbols[0])
    )
    with pytest.raises(StoreError, match="bad.llpr: not a valid LLPR state"):
        state_from_bytes(b"not an npz", "bad.llpr")
    import io

    buffer = io.BytesIO()  # an object array would need pickle: refused, never loaded
    np.savez(buffer, covariance=np.array([{"x": 1}], dtype=object))
    with pytest.raises(StoreError, match="not a valid LLPR state"):
        state_from_bytes(buffer.getvalue())


def test_selection_uses_the_scales_of_the_fit_that_derived_its_window():
    docs = [
        {
            "index": 0,
            "calibration": {
                "trust_lo": 0.1,
                "trust_hi": 0.3,
                "conformal": {"quantile": 2.0, "element_scales": {"H": 1}},
            },
        },
        {
            "index": 1,
            "calibration": {
                "trust_lo": None,
                "trust_hi": None,
                "conformal": {"quantile": None, "element_scales": {"H": 5}},
            },
        },
    ]
    assert window_scales(docs, [0.1, 0.3]) == {"H": 1}  # iteration 1's fit failed: window kept
    assert window_scales(docs, [0.05, 0.5]) == {}  # a fixed window: raw scores
    assert window_scales(docs, None) == {}


def test_status_line_and_plot_title_say_what_the_conformal_fit_is(tmp_path):
    from frostline.report.plots import calibration_plot, calibration_title
    from frostline.report.tables import _status_caption, conformal_line
    from frostline.select.calibration import Calibration
    from frostline.select.uncertainty.calibration import FrameScores

    rng = np.random.default_rng(1)
    scores = [
        FrameScores(atom=list(rng.uniform(0.1, 1, 3)), symbols=["Cu", "H", "H"]) for _ in range(20)
    ]
    errors = [list(0.3 * np.array(s.atom) * rng.uniform(0.5, 1.5, 3)) for s in scores]
    conformal = fit_conformal("last-layer", scores, errors)
    cal = Calibration(
        n_points=20,
        uncertainty="last-layer",
        conformal=conformal,
        trust_lo=0.1,
        trust_hi=0.3,
        stds=[conformal.frame_score(s) for s in scores],
        errors=[max(e) for e in errors],
        coverage_observed=0.95,
    ).model_dump()
    line = conformal_line(cal)
    assert line.startswith(f"q {conformal.quantile:.3g}, scales Cu ")
    assert "90 % bound covers 95 % of 20 frames" in line
    empty = {"conformal": fit_conformal("last-layer", [], []).model_dump()}  # no labels
    status = {"campaign": "c", "iterations": [{"index": 3, "calibration": cal},
                                              {"index": 4, "calibration": empty}]}  # fmt: skip
    assert "last-layer calibration (iteration 3): q" in _status_caption(status)
    title = calibration_title("c", [cal])
    assert "90 % conformal bound" in title and "trust window of 1 fits" in title
    assert calibration_plot(status, tmp_path / "cal.png").stat().st_size > 0
    unfitted = fit_conformal("last-layer", scores[:3], errors[:3])
    assert conformal_line({"conformal": unfitted.model_dump()}).startswith("no bound: 3")


@pytest.fixture(scope="module")
def explored(foundation, tmp_path_factory):
    """Both engines explore in last-layer mode with one stored model trained on three frames."""
    from jobflow import run_locally
    from pymatgen.io.ase import AseAtomsAdaptor

    from frostline.config import StoreConfig
    from frostline.explore.jobs import ExploreMaker
    from frostline.explore.shared_committee import load_mace_model
    from frostline.finetune.safe_model import model_to_blob
    from frostline.schemas import (
        ExploreResult,
        FineTuneResult,
        LabelledStructure,
        ModelDoc,
        ModelFile,
        structure_hash,
    )
    from frostline.store import Records, make_job_store
    from frostline.structures import cu111_slab, h2_on_slab

    tmp = tmp_path_factory.mktemp("last-layer-explore")
    store = make_job_store(StoreConfig(), tmp)
    records = Records(store).connect()
    rng = np.random.default_rng(3)
    train = [AseAtomsAdaptor.get_structure(h2_on_slab(cu111_slab(), rng)) for _ in range(3)]
    labels = [
        LabelledStructure(
            structure=d,
            energy=0.0,
            forces=[[0.0] * 3] * len(d["sites"]),
            oracle="emt",
            structure_hash=structure_hash(d),
        )
        for d in (json.loads(s.to_json()) for s in train)
    ]
    records.upsert("labelled", [x.model_dump(mode="json") for x in labels], ["structure_hash"])
    data = model_to_blob(load_mace_model(foundation))
    file = ModelFile(
        filename="m0.model", sha256=records.put_model_file("m0", data), size_bytes=len(data)
    )
    doc = ModelDoc(
        model_id="m0",
        kind="committee-member",
        elements=["Cu", "H"],
        file=file,
        training_set_hashes=[x.structure_hash for x in labels],
    )
    finetuned = FineTuneResult(
        models=[doc], freeze_level=6, trainable_parameters=1, total_parameters=2, wall_time_s=0.0
    ).model_dump(mode="json")
    starts = [AseAtomsAdaptor.get_structure(h2_on_slab(cu111_slab(), rng)).as_dict() for _ in "ab"]
    results = {}
    for engine in ("ase", "batched"):
        maker = ExploreMaker(
            temperatures=[500.0],
            steps=8,
            sample_every=4,
            engine=engine,
            starts_per_temperature=2,
            device="cpu",
            uncertainty="last-layer",
        )
        job = maker.make(finetuned, starts, 0)
        run_locally(job, store=store, root_dir=tmp / engine, create_folders=True, log=False)
        store.connect()
        results[engine] = ExploreResult.model_validate(job.output.resolve(store))
    results["calibrated"] = _calibrated_biased_run(store, records, doc, starts, tmp)
    return records, doc, results


def _calibrated_biased_run(store, records, doc, starts, tmp):
    """Iteration 1 of campaign ``c`` with a window a conformal fit derived: its bound
    (huge: every trajectory stops at its first frame) and its scales (the bias)."""
    from jobflow import run_locally

    from frostline.explore.jobs import ExploreMaker
    from frostline.schemas import ExploreResult, FineTuneResult
    from frostline.select.uncertainty.calibration import ConformalCalibration

    fit = ConformalCalibration(method="last-layer", element_scales={"Cu": 0.5, "H": 0.02},
                               quantile=1e6)  # fmt: skip
    calibration = {"trust_lo": 0.1, "trust_hi": 0.3, "conformal": fit.model_dump()}
    records.upsert("iterations", [{"campaign": "c", "index": 0, "calibration": calibration}],
                   ["campaign", "index"])  # fmt: skip
    model = doc.model_copy(update={"campaign": "c"})
    finetuned = FineTuneResult(
        models=[model], freeze_level=6, trainable_parameters=1, total_parameters=2, wall_time_s=0
    ).model_dump(mode="json")
    maker = ExploreMaker(temperatures=[500.0], steps=8, sample_every=4, device="cpu",
                         uncertainty="last-layer", bias="uncertainty")  # fmt: skip
    job = maker.make(finetuned, starts, 1, [0.1, 0.3])
    run_locally(
        job, store=store, root_dir=tmp / "calibrated", create_folders=True, log=False,
        ensure_success=True,
    )  # fmt: skip
    store.connect()
    return ExploreResult.model_validate(job.output.resolve(store))


@pytest.mark.slow
def test_a_calibrated_window_stops_and_biases_exploration(explored):
    result = explored[2]["calibrated"]
    assert result.n_aborted == result.n_trajectories == 2
    assert result.abort_reasons == {"error_bound": 2} and len(result.candidates) == 2
    assert all(c.provenance.bias == "uncertainty" for c in result.candidates)
    assert all(c.provenance.bias is None for c in explored[2]["ase"].candidates)  # thermal
    assert explored[2]["ase"].abort_reasons == {}  # no calibration: no calibrated stop


@pytest.mark.slow
def test_exploration_records_last_layer_scores_from_the_force_call(explored):
    from pymatgen.io.ase import AseAtomsAdaptor

    from frostline.finetune.committee import load_committee
    from frostline.schemas import as_structure
    from frostline.select.uncertainty.loop import last_layer_state, state_id
    from frostline.select.uncertainty.methods import LastLayerUncertainty

    records, doc, results = explored
    ase, batched = results["ase"], results["batched"]
    assert len(ase.candidates) == len(batched.candidates) == 4
    for a, b in zip(ase.candidates, batched.candidates, strict=True):
        assert len(a.atom_scores) == len(a.structure["sites"])
        assert a.max_force_std == max(a.atom_scores) > 0
        assert np.allclose(a.atom_scores, b.atom_scores, rtol=1e-6)
    # the state was stored once; reloaded, it gives the scores the MD recorded (twice the same)
    stored = records.get_model_file(state_id(doc.model_id))
    llpr = last_layer_state(records, doc)
    assert records.get_model_file(state_id(doc.model_id)) == stored  # not refitted/overwritten
    method = LastLayerUncertainty(load_committee(records, [doc], device="cpu"), llpr)
    frames = [AseAtomsAdaptor.get_atoms(as_structure(c.structure)) for c in ase.candidates]
    for c, p in zip(ase.candidates, method.predict(frames), strict=True):
        assert np.allclose(p.scores.atom, c.atom_scores, rtol=1e-6)
    hydrogen = [
        s
        for c in ase.candidates
        for s, z in zip(c.atom_scores, c.structure["sites"], strict=True)
        if z["species"][0]["element"] == "H"
    ]
    assert np.isfinite(hydrogen).all()


# one model; 16 MD frames, 9 labels (the fewest a 90 % conformal bound needs), every frame a
# candidate before the first calibration
LAST_LAYER_CAMPAIGN = {
    "name": "llpr",
    "finetune": {"committee_size": 1},
    "explore": {"temperatures": [300.0, 600.0], "starts_per_temperature": 2, "steps": 12,
                "sample_every": 3},
    "select": {"uncertainty": "last-layer", "max_labels_per_iteration": 9,
               "novelty_threshold": 0.0, "trust_hi": 1e6},
}  # fmt: skip


@pytest.mark.slow
def test_last_layer_campaign_with_one_model_calibrates_and_reports(tmp_path, foundation):
    """committee_size 1: explore, select, label and a conformal calibration per batch."""
    from rich.console import Console

    from frostline.flows.campaign import run_campaign
    from frostline.registry.queries import campaign_status, open_campaign_dir
    from frostline.report.tables import status_table

    config = parse_config(tiny_campaign(**LAST_LAYER_CAMPAIGN))
    run_campaign(config, tmp_path, log=False)
    status = campaign_status(open_campaign_dir(Path(tmp_path)))
    first, second = status["iterations"][:2]
    assert first["uncertainty"] == "last-layer" and len(first["model_ids"]) == 1
    cal = first["calibration"]
    assert cal["uncertainty"] == "last-layer" and cal["n_points"] == first["n_new_labels"] >= 9
    conformal = cal["conformal"]
    assert conformal["quantile"] > 0 and set(conformal["element_scales"]) == {"Cu", "H"}
    assert 0.9 <= cal["coverage_observed"] <= 1.0
    assert len(cal["frames"]) == len(cal["atom_errors"]) == cal["n_points"]
    assert second["trust_window"] == pytest.approx([cal["trust_lo"], cal["trust_hi"]])
    assert cal["trust_lo"] == pytest.approx(
        config.select.target_force_error / conformal["quantile"]
    )
    console = Console(width=200, record=True)
    console.print(status_table(status))
    assert "last-layer calibration (iteration 0): q" in console.export_text()
    from frostline.report.plots import calibration_plot, calibration_title

    assert "conformal bound" in calibration_title("llpr", [cal])
    assert calibration_plot(status, tmp_path / "calibration.png").stat().st_size > 0


def test_explore_jobs_stored_before_the_uncertainty_field_still_resume():
    from frostline.explore.jobs import ExploreMaker
    from frostline.reliability.memo import _key, _plain, memo_keys

    maker = ExploreMaker()
    added = {"uncertainty", "abort_error_factor", "target_force_error", "bias", "bias_strength",
             "bias_width"}  # fmt: skip
    for fields in (added, added - {"uncertainty"}):  # the keys before each addition
        before = {k: v for k, v in _plain(maker).items() if k not in fields}
        assert _key("explore", {"maker": before, "iteration": 1}) in memo_keys(
            "explore", maker=maker, iteration=1
        )
    before = {k: v for k, v in _plain(maker).items() if k not in added}
    old = _key("explore", {"maker": before, "iteration": 1})
    llpr = ExploreMaker(uncertainty="last-layer")
    assert old not in memo_keys("explore", maker=llpr, iteration=1)
    with pytest.raises(ValueError, match="ExploreMaker field 'uncertainty'"):
        ExploreMaker(uncertainty="laplace")


def test_previous_fit_is_checked_on_the_new_batch():
    """The window selection used (the latest earlier fit) is tested on held-out frames."""
    from frostline.select.uncertainty.calibration import FrameScores
    from frostline.select.uncertainty.loop import previous_coverage

    scores = [FrameScores(atom=[0.1 * k, 0.05], symbols=["H", "Cu"]) for k in range(1, 11)]
    errors = [[0.3 * 0.1 * k, 0.01] for k in range(1, 11)]  # error = 0.3 x the H score
    fit = fit_conformal("last-layer", scores, errors).model_dump()
    docs = [{"index": 0, "calibration": {"conformal": fit}}]
    batch = [FrameScores(atom=[0.5, 0.05], symbols=["H", "Cu"])] * 4
    assert previous_coverage(docs, 1, batch, [0.1, 0.1, 0.1, 0.1]) == 1.0
    assert previous_coverage(docs, 1, batch, [0.1, 0.1, 5.0, 5.0]) == 0.5  # under-covered
    assert previous_coverage(docs, 0, batch, [0.1] * 4) is None  # no earlier fit
    assert previous_coverage([], 1, batch, [0.1] * 4) is None
