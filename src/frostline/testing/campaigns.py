"""The one tiny campaign of the tests and the chaos harness (EMT oracle, two short iterations)."""

from __future__ import annotations

from frostline.config import merge_sections


def tiny_campaign(name: str = "tiny", **overrides) -> dict:
    """A campaign small enough for a unit test; ``overrides``: sections merged key by key."""
    config = {
        "name": name,
        "elements": ["Cu", "H"],
        "foundation": "mini",
        "system": {"builder": "h2_cu111", "n_initial": 5, "n_validation": 3},
        "finetune": {"freeze": 6, "committee_size": 2, "epochs": 2, "batch_size": 2},
        "explore": {
            "temperatures": [300.0],
            "steps": 12,
            "sample_every": 4,
            "starts_per_temperature": 1,
        },
        # a tiny trust_lo makes every frame 'uncertain', so the loop really iterates
        "select": {"trust_lo": 1e-9, "trust_hi": 10.0, "max_labels_per_iteration": 2},
        "oracle": {"name": "emt"},
        "convergence": {"max_iterations": 2, "label_budget": 50, "accurate_fraction": 0.9},
        "distill": {"enabled": False},  # tests/distill/test_distill.py turns it on
        "forgetting": {"enabled": False},  # tests/finetune/test_forgetting.py turns it on
    }
    return merge_sections(config, overrides)
