"""Campaign configuration: valid files load, bad ones fail naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import tiny_campaign

from frostline.config import ConfigError, load_config, parse_config
from frostline.flows.campaign import validate_campaign


def write(tmp_path: Path, data, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_demo_config_loads():
    from frostline.cli import DEMO_CONFIG

    config = load_config(DEMO_CONFIG)
    assert config.elements == ["Cu", "H"]
    assert config.oracle.name == "xtb"
    assert config.finetune.freeze in range(8)


def test_bad_yaml_names_file(tmp_path):
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML"):
        load_config(path)


def test_not_a_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_field_is_named(tmp_path):
    data = tiny_campaign()
    data["finetune"]["freez"] = 5
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "c.yaml" in str(exc.value)
    assert "field 'finetune.freez': unknown field" in str(exc.value)


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("finetune", {"freeze": 9}, "finetune.freeze"),
        ("finetune", {"committee_size": "many"}, "finetune.committee_size"),
        ("finetune", {"freeze_sweep": [0, 8]}, "finetune.freeze_sweep"),
        ("finetune", {"lr_sweep": [0.005, -0.01]}, "finetune.lr_sweep"),
        ("finetune", {"scheduler_patience": -1}, "finetune.scheduler_patience"),
        ("finetune", {"sweep": "sometimes"}, "finetune.sweep"),
        ("finetune", {"loss": "mse"}, "finetune.loss"),
        ("finetune", {"loss": "huber", "stress_weight": 1.0}, "finetune"),
        ("finetune", {"loss": "l1l2", "member_weights": "dirichlet"}, "finetune"),
        ("select", {"strategy": "greedy"}, "select.strategy"),
        ("select", {"novelty_threshold": -1}, "select.novelty_threshold"),
        ("select", {"hi_factor": 0.5}, "select.hi_factor"),
        ("select", {"calibration_history": 0}, "select.calibration_history"),
        ("select", {"sampling_power": -1}, "select.sampling_power"),
        ("explore", {"temperatures": [-5]}, "explore.temperatures"),
        ("select", {"trust_lo": 0.3, "trust_hi": 0.1}, "select"),
        ("oracle", {"name": "gaussian"}, "oracle.name"),
        ("convergence", {"max_iterations": 0}, "convergence.max_iterations"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, section, value, field):
    data = tiny_campaign(**{section: value})
    with pytest.raises(ConfigError, match=rf"field '{field}'"):
        load_config(write(tmp_path, data))


def test_unknown_element(tmp_path):
    data = tiny_campaign(elements=["Cu", "Xx"])
    with pytest.raises(ConfigError, match=r"field 'elements'.*unknown element\(s\): Xx"):
        load_config(write(tmp_path, data))


def test_element_unknown_to_foundation(foundation):
    config = parse_config(tiny_campaign(elements=["Cu", "H", "Zr"]))
    with pytest.raises(ConfigError, match=r"field 'elements'.*does not know Zr"):
        validate_campaign(config)


def test_foundation_missing(tmp_path):
    config = parse_config(tiny_campaign(foundation=str(tmp_path / "none.model")))
    with pytest.raises(ConfigError, match="field 'foundation'"):
        validate_campaign(config)


def test_relative_paths_resolve_against_config_folder(tmp_path):
    from ase.build import bulk
    from ase.io import write as ase_write

    ase_write(tmp_path / "seeds.extxyz", [bulk("Cu", "fcc", cubic=True)])
    data = tiny_campaign(system={"builder": None, "seeds_file": "seeds.extxyz"})
    config = load_config(write(tmp_path, data))
    assert config.system.seeds_file == tmp_path / "seeds.extxyz"


def test_calibration_history_reaches_the_calibrate_job():
    from frostline.flows.active_learning import ActiveLearningMaker

    config = parse_config(tiny_campaign(select={"trust": "calibrated", "calibration_history": 3}))
    maker = ActiveLearningMaker.from_config(config, "mini")
    assert maker.calibration.history == 3
    default = ActiveLearningMaker.from_config(parse_config(tiny_campaign()), "mini")
    assert default.calibration.history == 1


@pytest.mark.parametrize("strategy", ["stochastic", "representative"])
def test_sampling_strategies_reach_the_select_job(strategy, foundation):
    from frostline.flows.active_learning import ActiveLearningMaker

    select = {"strategy": strategy, "sampling_power": 2.0}
    config = parse_config(tiny_campaign(select=select))
    maker = ActiveLearningMaker.from_config(config, foundation)
    assert (maker.select.strategy, maker.select.sampling_power) == (strategy, 2.0)
    assert maker.select.descriptor_model == foundation
    if strategy == "representative":  # clusters in descriptor space: no model file, no campaign
        with pytest.raises(ValueError, match="representative.*descriptor_model"):
            ActiveLearningMaker.from_config(config, "not-a-model-file")
    with pytest.raises(ConfigError, match="select.strategy"):
        parse_config(tiny_campaign(select={"strategy": "clustered"}))


@pytest.mark.parametrize(
    ("field", "default", "other", "bad"),
    [
        ("checkpoint_on", "holdout", "validation", "best"),
        ("member_weights", "uniform", "dirichlet", "bootstrap"),
    ],
)
def test_finetune_choices_reach_the_finetune_maker(field, default, other, bad):
    from frostline.flows.active_learning import ActiveLearningMaker

    plain = ActiveLearningMaker.from_config(parse_config(tiny_campaign()), "mini")
    assert getattr(plain.finetune, field) == default
    config = parse_config(tiny_campaign(finetune={field: other}))
    assert getattr(ActiveLearningMaker.from_config(config, "mini").finetune, field) == other
    with pytest.raises(ConfigError, match=f"finetune.{field}"):
        parse_config(tiny_campaign(finetune={field: bad}))


def test_scheduler_patience_reaches_the_maker_and_a_rate_that_never_decays_is_flagged():
    from frostline.flows.active_learning import ActiveLearningMaker

    config = parse_config(tiny_campaign(finetune={"patience": 30, "scheduler_patience": 10}))
    assert ActiveLearningMaker.from_config(config, "mini").finetune.scheduler_patience == 10
    plain = ActiveLearningMaker.from_config(parse_config(tiny_campaign()), "mini").finetune
    assert plain.scheduler_patience == 0  # mace-torch's own default
    # patience 30 with mace-torch's 50-epoch scheduler patience: training ends first
    with pytest.warns(UserWarning, match=r"finetune.scheduler_patience 50 >= finetune.patience 30"):
        parse_config(tiny_campaign(finetune={"patience": 30}))
    with pytest.warns(UserWarning, match="scheduler_patience 30 >= finetune.patience 30"):
        parse_config(tiny_campaign(finetune={"patience": 30, "scheduler_patience": 30}))


def test_contact_picks_reach_the_select_maker():
    from frostline.flows.active_learning import ActiveLearningMaker

    plain = ActiveLearningMaker.from_config(parse_config(tiny_campaign()), "mini").select
    assert (plain.contact_picks, plain.contact_margin, plain.contact_deficit) == (
        0,
        0.02,
        "absolute",
    )
    chosen = {"contact_picks": 1, "contact_margin": 0.05, "contact_deficit": "relative"}
    select = ActiveLearningMaker.from_config(parse_config(tiny_campaign(select=chosen)), "mini")
    assert (select.select.contact_picks, select.select.contact_margin) == (1, 0.05)
    assert select.select.contact_deficit == "relative"
    with pytest.raises(ConfigError, match="select.contact_deficit"):
        parse_config(tiny_campaign(select={"contact_deficit": "percent"}))
    with pytest.raises(ConfigError, match="select.contact_picks"):
        parse_config(tiny_campaign(select={"contact_picks": -1}))


def test_sweep_policies():
    """first: never again; every: always; doubled: once the training set has doubled."""
    from frostline.flows.active_learning import sweep_due

    assert not sweep_due("first", 100, 10)
    assert sweep_due("every", 11, 10)
    assert not sweep_due("doubled", 19, 10) and sweep_due("doubled", 20, 10)
    assert not sweep_due("doubled", 100, None)  # no sweep ran: no level to revisit
    with pytest.raises(ValueError, match="finetune.sweep"):
        sweep_due("sometimes", 20, 10)


def test_stratify_reaches_the_select_maker():
    from frostline.flows.active_learning import ActiveLearningMaker

    plain = ActiveLearningMaker.from_config(parse_config(tiny_campaign()), "mini").select
    assert plain.stratify == "none"
    chosen = parse_config(tiny_campaign(select={"stratify": "exploration"}))
    assert ActiveLearningMaker.from_config(chosen, "mini").select.stratify == "exploration"
    with pytest.raises(ConfigError, match="select.stratify"):
        parse_config(tiny_campaign(select={"stratify": "temperature"}))


def test_frostline_settings_read_the_environment_at_each_call(monkeypatch, tmp_path):
    from frostline.settings import env_var, settings

    monkeypatch.setenv("FROSTLINE_CACHE", str(tmp_path))
    monkeypatch.setenv("FROSTLINE_STORE_RETRY_S", "12.5")
    assert settings().cache == tmp_path and settings().store_retry_s == 12.5
    monkeypatch.setenv("FROSTLINE_STORE_RETRY_S", "soon")  # not a number: the default
    assert settings().store_retry_s == 600.0
    monkeypatch.setenv("FROSTLINE_STORE_RETRY_S", "-3")
    assert settings().store_retry_s == 0.0
    assert env_var("mongodb_uri") == "FROSTLINE_MONGODB_URI"
    with pytest.raises(KeyError):
        env_var("mongo_uri")


def test_makers_built_in_code_obey_the_campaign_files_rules():
    """Each rule lives on the config model; a maker built without a campaign file gets it too,
    as a one-line error naming the maker and the field."""
    from frostline.distill.jobs import DistillMaker
    from frostline.explore.jobs import ExploreMaker
    from frostline.finetune.jobs import FineTuneMaker

    # a cross-field rule that only the config held before
    with pytest.raises(ConfigError, match="finetune.loss huber cannot fit stresses"):
        parse_config(tiny_campaign(finetune={"loss": "huber", "stress_weight": 1.0}))
    with pytest.raises(ValueError, match="^FineTuneMaker: .*loss huber cannot fit stresses"):
        FineTuneMaker(loss="huber", stress_weight=1.0)
    with pytest.raises(ValueError) as bad:
        ExploreMaker(steps=0, friction=-1.0)
    assert str(bad.value).splitlines() == [
        "ExploreMaker field 'steps': Input should be greater than or equal to 1",
        "ExploreMaker field 'friction': Input should be greater than 0",
    ]
    with pytest.raises(ValueError, match="ExploreMaker: explore.bias: uncertainty needs"):
        ExploreMaker(bias="uncertainty", uncertainty="committee")
    with pytest.raises(ValueError, match="DistillMaker field 'basis_sizes'"):
        DistillMaker(basis_sizes=[])
    ExploreMaker(bias="uncertainty", uncertainty="last-layer", temperatures=[300.0])  # valid


def test_the_finetune_maker_and_the_campaign_file_have_the_same_defaults():
    """A maker built in code fine-tunes as a campaign file that leaves the field out."""
    import dataclasses

    from frostline.config import FineTuneConfig
    from frostline.finetune.jobs import FineTuneMaker

    maker, section = FineTuneMaker(), FineTuneConfig()
    shared = [f.name for f in dataclasses.fields(maker) if f.name in FineTuneConfig.model_fields]
    assert len(shared) > 20
    for name in shared:
        value = getattr(maker, name)
        assert (list(value) if isinstance(value, tuple) else value) == getattr(section, name), name
