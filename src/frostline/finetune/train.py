"""Run mace-torch's own training code (``mace.cli.run_train``) in-process.

Used for pretraining the mini foundation and for (frozen) fine-tuning. The mace training loop,
loss, EMA, checkpointing and E0 handling are mace-torch's; this module only builds arguments.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import mace  # noqa: F401  (import mace before e3nn: DESIGN.md §5)
import numpy as np
import torch
from ase import Atoms
from ase.io import write

from frostline.choices import MACE_LOSSES, MACE_REPLAY_NAMES
from frostline.finetune.coupling_cache import cache_coupling_matrices
from frostline.progress import training_reporter
from frostline.schemas import LabelledStructure, TrainingOutcome

KEYS = {"energy_key": "REF_energy", "forces_key": "REF_forces", "stress_key": "REF_stress"}


def write_training_file(
    structures: Sequence[LabelledStructure | Atoms],
    path: Path,
    weights: Sequence[float] | None = None,
) -> Path:
    """Write labelled structures to an extxyz file with ``REF_`` keys.

    ``weights``: one loss weight per structure, written as mace-torch's ``config_weight``.
    """
    atoms = [_as_atoms(s) for s in structures]
    if weights is not None:
        if len(weights) != len(atoms):
            raise ValueError(f"{len(weights)} weights for {len(atoms)} structures")
        atoms = [_with_info(a, config_weight=float(w)) for a, w in zip(atoms, weights, strict=True)]
    write(path, atoms, format="extxyz")
    return path


def _as_atoms(structure: LabelledStructure | Atoms) -> Atoms:
    return structure if isinstance(structure, Atoms) else structure.to_atoms()


def _with_info(atoms: Atoms, **info) -> Atoms:
    """A copy of ``atoms`` (calculator kept) with ``info`` entries added."""
    out = atoms.copy()
    out.calc = atoms.calc
    out.info.update(info)
    return out


ADDED_FIELDS = (
    "loss",
    "huber_delta",
    "pt_train_file",
    "num_samples_pt",
    "weight_pt_head",
    "lora",
    "lora_rank",
    "lora_alpha",
    "filter_type_pt",
)  # MaceTrainSettings fields newer than the first ledgers


@dataclass
class MaceTrainSettings:
    """Arguments passed to mace-torch's training (only those frostline sets)."""

    name: str = "model"
    seed: int = 0
    max_num_epochs: int = 20
    batch_size: int = 4
    valid_batch_size: int = 8
    lr: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    stress_weight: float = 0.0  # > 0: mace's energy + forces + stress loss
    loss: str = "weighted"  # "huber" (energy, forces, stress), "l1l2" (l1l2energyforces)
    huber_delta: float = 0.01
    default_dtype: str = "float64"
    device: str = "cpu"
    ema: bool = True
    e0s: str = "average"
    # architecture (ignored by mace when fine-tuning from a foundation)
    r_max: float = 5.0
    num_channels: int = 32
    max_L: int = 0
    num_interactions: int = 2
    correlation: int = 3
    max_ell: int = 3
    num_radial_basis: int = 8
    # fine-tuning
    foundation_model: str | None = None
    freeze: int | None = None
    keep_foundation_elements: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    # multihead replay (mace-torch's pt_head trained on the foundation's own data beside yours):
    # num_samples_pt structures drawn (by seed) from pt_train_file (frostline draws them: mace-torch
    # subsamples only its own Materials Project replay data)
    pt_train_file: str | None = None
    num_samples_pt: int = 200
    weight_pt_head: float = 1.0
    # mace-torch's filtering of the replay pool by the training data's elements ("none",
    # "combinations": frames made only of those elements, "inclusive", "exclusive")
    filter_type_pt: str = "none"
    # LoRA adapters (mace-torch --lora: only the adapters train, merged into the saved model)
    lora: bool = False
    lora_rank: int = 4
    lora_alpha: float = 1.0

    def fingerprint(self) -> str:
        """The dataclass repr, without fields added later (``ADDED_FIELDS``) at their defaults.

        Benchmark ledgers key finished trainings by it, so adding a setting to frostline does
        not invalidate trainings recorded before; set, an added field is part of the key.
        """
        shown = [
            f
            for f in fields(self)
            if f.name not in ADDED_FIELDS or getattr(self, f.name) != f.default
        ]
        body = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in shown)
        return f"{type(self).__name__}({body})"

    def to_argv(self, train_file: Path, valid_file: Path | None, work_dir: Path) -> list[str]:
        argv = [
            f"--name={self.name}",
            f"--seed={self.seed}",
            f"--train_file={train_file}",
            f"--work_dir={work_dir}",
            f"--model_dir={work_dir}",
            f"--max_num_epochs={self.max_num_epochs}",
            f"--batch_size={self.batch_size}",
            f"--valid_batch_size={self.valid_batch_size}",
            f"--lr={self.lr}",
            f"--energy_weight={self.energy_weight}",
            f"--forces_weight={self.forces_weight}",
            f"--default_dtype={self.default_dtype}",
            f"--device={self.device}",
            f"--E0s={self.e0s}",
            "--save_cpu",
            "--restart_latest",
            "--eval_interval=1",
            "--error_table=PerAtomMAE",
            *[f"--{k}={v}" for k, v in KEYS.items()],
        ]
        if valid_file is not None:
            argv.append(f"--valid_file={valid_file}")
        else:
            argv.append("--valid_fraction=0.1")
        if self.loss not in MACE_LOSSES:
            known = " / ".join(MACE_LOSSES)
            raise ValueError(f"finetune.loss: unknown loss {self.loss!r} ({known})")
        if self.loss == "huber":  # mace's huber loss always has a stress term: weight it here
            argv += ["--loss=huber", f"--huber_delta={self.huber_delta}"]
            argv.append(f"--stress_weight={self.stress_weight}")
        elif self.loss == "l1l2":
            argv.append("--loss=l1l2energyforces")
        elif self.stress_weight > 0:
            argv += ["--loss=stress", f"--stress_weight={self.stress_weight}"]
            argv.append("--compute_stress=True")
        if self.ema:
            argv += ["--ema", "--ema_decay=0.99"]
        if self.foundation_model is not None:
            argv += [f"--foundation_model={self.foundation_model}", *self._strategy_argv()]
            if self.freeze:
                argv.append(f"--freeze={self.freeze}")
            if self.keep_foundation_elements:
                argv.append("--foundation_model_elements=True")
        else:
            argv += [
                "--model=MACE",
                f"--r_max={self.r_max}",
                f"--num_channels={self.num_channels}",
                f"--max_L={self.max_L}",
                f"--num_interactions={self.num_interactions}",
                f"--correlation={self.correlation}",
                f"--max_ell={self.max_ell}",
                f"--num_radial_basis={self.num_radial_basis}",
            ]
        argv += [f"--{k}={v}" for k, v in self.extra.items()]
        return argv

    def _strategy_argv(self) -> list[str]:
        """mace-torch's fine-tuning mode: multihead replay, LoRA, or a single head."""
        argv = []
        if self.pt_train_file is None:
            argv.append("--multiheads_finetuning=False")
        else:
            if self.e0s == "average":  # mace-torch asserts it; say which setting
                raise ValueError("finetune.e0s: 'average' cannot be used with multihead replay")
            argv += [
                "--multiheads_finetuning=True",
                f"--pt_train_file={self.pt_train_file}",
                f"--weight_pt_head={self.weight_pt_head}",  # reaches mace-torch's own data only
                "--force_mh_ft_lr=True",  # frostline's lr and EMA, not mace-torch's 1e-4 override
                # mace-torch trains every multihead fine-tune with its universal loss (huber on
                # energy, forces and stress), whatever --loss says: its stress term made explicit
                f"--stress_weight={self.stress_weight or MULTIHEAD_STRESS_WEIGHT}",
            ]
        if self.lora:
            argv += ["--lora=True", f"--lora_rank={self.lora_rank}",
                     f"--lora_alpha={self.lora_alpha}"]  # fmt: skip
        return argv


class _PatienceExhausted(Exception):
    """Raised from mace's own "Stopping optimization" log record to leave its epoch loop."""


def _stop_when_patience_is_exhausted(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if message.startswith("Stopping optimization after") and "Stage Two" not in message:
        raise _PatienceExhausted(message)
    return True


@contextmanager
def serial_early_stopping() -> Iterator[None]:
    """Make mace-torch's ``--patience`` stop a non-distributed training.

    mace-torch 0.3.14-0.3.16 logs "Stopping optimization after N epochs without improvement"
    but only leaves its epoch loop in distributed runs (ACEsuit/mace#1384, fix pending in
    #1502), so a serial run with ``--patience`` trains for all ``max_num_epochs``. While this
    context is active, ``mace.tools.train`` is wrapped: that exact log record (emitted after the
    epoch's validation, when the best checkpoint is already on disk) ends the loop, and
    ``run_train`` goes on as after a complete training (best checkpoint, evaluation, model).
    """
    import mace.tools as mace_tools

    original = mace_tools.train

    def train(*args, **kwargs):
        root = logging.getLogger()
        root.addFilter(_stop_when_patience_is_exhausted)
        try:
            original(*args, **kwargs)
            return
        except _PatienceExhausted as stop:
            reason = str(stop)
        finally:
            root.removeFilter(_stop_when_patience_is_exhausted)
        logging.info(f"{reason}: training loop left (frostline, ACEsuit/mace#1384)")

    mace_tools.train = train
    try:
        yield
    finally:
        mace_tools.train = original


def foundation_in_training_dtype(settings: MaceTrainSettings, work_dir: Path) -> MaceTrainSettings:
    """Settings whose foundation file has the training's dtype (a converted copy if needed).

    mace-torch fine-tunes a foundation *file* in the dtype it was saved with: a float32
    foundation (e.g. ``mini-64``) under ``--default_dtype=float64`` fails with "both inputs
    should have same dtype". The copy (``work_dir/foundation-<dtype>.model``) changes only the
    parameters' precision; the caller's settings (and what was asked for) are unchanged.
    """
    spec = settings.foundation_model
    if not spec or not Path(spec).is_file():
        return settings  # no foundation, or a mace_mp name (mace-torch converts those)
    want = torch.float64 if settings.default_dtype == "float64" else torch.float32
    from frostline.finetune.safe_model import load_user_model_file

    model = load_user_model_file(spec, "foundation")  # the user's file: their trust decision
    if next(model.parameters()).dtype == want:
        return settings
    converted = Path(work_dir) / f"foundation-{settings.default_dtype}.model"
    torch.save(model.to(want), converted)
    return replace(settings, foundation_model=str(converted))


_EPOCH_RECORD = re.compile(r"Epoch (\d+):")  # mace-torch's validation line after each epoch


class _EpochReporter(logging.Filter):
    """Pass each mace-torch "Epoch N:" log record on as ``on_epoch(N + 1, cap)`` (epochs done,
    once per epoch); every record goes on to mace-torch's log file unchanged."""

    def __init__(self, on_epoch: Callable[[int, int], None], cap: int) -> None:
        super().__init__()
        self.on_epoch, self.cap, self.done = on_epoch, cap, 0

    def filter(self, record: logging.LogRecord) -> bool:
        match = _EPOCH_RECORD.match(record.getMessage())
        if match is not None and int(match.group(1)) + 1 > self.done:
            self.done = int(match.group(1)) + 1
            self.on_epoch(self.done, self.cap)
        return True


def run_mace_training(
    settings: MaceTrainSettings,
    train: Sequence[LabelledStructure | Atoms],
    work_dir: Path,
    valid: Sequence[LabelledStructure | Atoms] | None = None,
    weights: Sequence[float] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> Path:
    """Train with mace-torch and return the path of the saved ``.model`` file.

    ``weights``: a loss weight per ``train`` structure (none: all 1). ``on_epoch(done, cap)``
    is called after each epoch (default: the run's progress display, ``frostline.progress``).
    mace-torch's own log goes to its log file only (``work_dir/logs``), not to the console.
    """
    from mace.cli.run_train import run
    from mace.tools import build_default_arg_parser

    cache_coupling_matrices()
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    train_file = write_training_file(train, work_dir / "train.extxyz", weights)
    valid_file = write_training_file(valid, work_dir / "valid.extxyz") if valid else None
    replaying = settings.pt_train_file is not None
    elements = sorted({e for x in train for e in _as_atoms(x).symbols} if replaying else ())
    argv_settings = replay_subset(
        foundation_in_training_dtype(settings, work_dir), work_dir, elements
    )
    args = build_default_arg_parser().parse_args(
        argv_settings.to_argv(train_file, valid_file, work_dir)
    )
    dtype = torch.get_default_dtype()
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    if on_epoch is None:
        on_epoch = training_reporter(settings.name, settings.max_num_epochs)
    epochs = _EpochReporter(on_epoch, settings.max_num_epochs)
    root.addFilter(epochs)  # mace-torch logs "Epoch N: ..." to the root logger
    for h in handlers:  # mace-torch logs DEBUG to the root logger; it adds its own console handler
        root.removeHandler(h)
    cwd = os.getcwd()
    try:  # mace-torch logs every epoch to stdout and to its log file: keep only the file
        with serial_early_stopping(), open(os.devnull, "w") as null, redirect_stdout(null):
            run(args)
    finally:
        root.removeFilter(epochs)
        os.chdir(cwd)
        torch.set_default_dtype(dtype)
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
    model = work_dir / f"{settings.name}.model"
    if not model.exists():
        raise RuntimeError(f"mace-torch training finished without writing {model}")
    if settings.pt_train_file is not None:
        keep_finetuned_head(model)
    return model


FINETUNED_HEAD = "Default"  # mace-torch's name of the user's head (prepare_default_head)
MULTIHEAD_STRESS_WEIGHT = 1.0
"""The stress weight of mace-torch's universal loss, which it trains every multihead fine-tune
with (its ``--stress_weight`` default), kept while ``stress_weight`` is 0: both heads fit the
stresses their structures have (the replay set's bulk cells do)."""
REPLAY_WEIGHT_KEYS = ("config_energy_weight", "config_forces_weight", "config_stress_weight")
"""Per-structure property weights, the only weights mace-torch's universal loss reads (it
ignores ``config_weight``, where its own ``--weight_pt_head`` goes)."""


def replay_subset(
    settings: MaceTrainSettings, work_dir: Path, elements: Sequence[str] = ()
) -> MaceTrainSettings:
    """Settings whose ``pt_train_file`` holds ``num_samples_pt`` structures of the replay set,
    drawn by the training's seed (``work_dir/replay.extxyz``) from the frames that pass
    mace-torch's ``filter_type_pt`` filter for ``elements`` (the training data's), weighted by
    ``weight_pt_head`` (``REPLAY_WEIGHT_KEYS``: mace-torch applies its ``--weight_pt_head``
    only to the data it draws itself, and then as a weight its universal loss ignores);
    unchanged without replay."""
    if settings.pt_train_file is None:
        return settings
    if settings.pt_train_file in MACE_REPLAY_NAMES:  # mace-torch draws from its own data
        extra = {**settings.extra, "num_samples_pt": str(settings.num_samples_pt),
                 "filter_type_pt": settings.filter_type_pt}  # fmt: skip
        return replace(settings, extra=extra)
    from ase.io import read
    from mace.cli.fine_tuning_select import FilteringType, filter_atoms

    kind = FilteringType(settings.filter_type_pt)
    pool = [a for a in read(settings.pt_train_file, ":") if filter_atoms(a, list(elements), kind)]
    if not pool:
        raise ValueError(
            f"finetune.replay_filter: no frame of {settings.pt_train_file} passes "
            f"{kind.value} for {sorted(elements)}"
        )
    rng = np.random.default_rng(settings.seed)
    n = min(settings.num_samples_pt, len(pool))
    drawn = [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]
    if (w := settings.weight_pt_head) != 1.0:  # the replay head's weight in the universal loss
        drawn = [_with_info(a, config_weight=w, **dict.fromkeys(REPLAY_WEIGHT_KEYS, w))
                 for a in drawn]  # fmt: skip
    out = write_training_file(drawn, work_dir / "replay.extxyz")
    return replace(settings, pt_train_file=str(out))


def keep_finetuned_head(model_file: Path) -> Path:
    """Make a multihead fine-tune's ``.model`` the fine-tuned head alone (what frostline's
    calculators, exploration and exports evaluate); the two-head model mace-torch wrote, with
    the foundation's replay head, stays beside it as ``NAME-multihead.model``."""
    from mace.tools.scripts_utils import remove_pt_head

    from frostline.finetune.safe_model import load_user_model_file

    both = model_file.with_name(f"{model_file.stem}-multihead.model")
    model_file.replace(both)
    model = load_user_model_file(both, "multihead fine-tuned")  # what mace-torch just wrote
    torch.save(remove_pt_head(model, FINETUNED_HEAD), model_file)
    return model_file


_EPOCH = re.compile(r"INFO: Epoch (\d+):")
_EPOCH_FORCE_MAE = re.compile(  # a multihead fine-tune logs its replay head too: not that one
    r"INFO: Epoch (\d+): (?!head: pt_head)[^\n]*?MAE_F=\s*([0-9.eE+-]+) meV"
)
_BEST = re.compile(r"Loaded Stage one model from epoch (\d+)")


def training_logs(work_dir: Path, name: str) -> list[Path]:
    """mace-torch's own logs of the training ``name`` in ``work_dir`` (one per run, resumed runs
    add one), without its ``_debug`` copies."""
    logs = sorted(Path(work_dir).glob(f"logs/{name}_run-*.log"))
    return [p for p in logs if not p.name.endswith("_debug.log")]


def best_checkpoint(work_dir: Path, name: str) -> Path | None:
    """The checkpoint mace-torch kept of the training ``name`` in ``work_dir`` (the highest
    epoch of ``checkpoints/NAME_run-SEED_epoch-N.pt``: it keeps only its best; None: none)."""
    found = sorted(
        (Path(work_dir) / "checkpoints").glob(f"{name}_run-*_epoch-*.pt"),
        key=lambda p: int(p.stem.rsplit("-", 1)[1]),
    )
    return found[-1] if found else None


def training_outcome(work_dir: Path, name: str, max_epochs: int) -> TrainingOutcome | None:
    """Epochs run, best epoch and early stop of the training ``name`` in ``work_dir``.

    Read from mace-torch's own log (``logs/NAME_run-SEED.log``): its "Epoch N:" validation
    lines (with the force MAE of each epoch on the structures that choose the checkpoint),
    "Loaded Stage one model from epoch K" (the checkpoint the ``.model`` is) and
    "Stopping optimization" (patience exhausted). ``None`` without a log.
    """
    logs = training_logs(work_dir, name)
    if not logs:
        return None
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    epochs = [int(m) for m in _EPOCH.findall(text)]
    best = [int(m) for m in _BEST.findall(text)]
    # a resumed run logs some epochs twice: the later line (the run that went on) counts
    force_mae = {int(e): float(mae) for e, mae in _EPOCH_FORCE_MAE.findall(text)}
    best_epoch = best[-1] if best else None
    return TrainingOutcome(
        epochs_run=max(epochs) + 1 if epochs else 0,
        max_epochs=max_epochs,
        best_epoch=best_epoch,
        stopped_early="Stopping optimization after" in text,
        kept_force_mae=force_mae.get(best_epoch) if best_epoch is not None else None,
        lowest_force_mae=min(force_mae.values()) if force_mae else None,
    )
