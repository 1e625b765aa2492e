"""Config plumbing: the OmegaConf resolvers the YAML uses and checks that run before any
model is built, so a config error costs a second, not a NeMo import and a model load."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bertlab.encoders import embedded_encoder_path
from bertlab.io import UserError
from bertlab.long_text import STRATEGIES


class ConfigError(UserError, ValueError):
    """A config that cannot train: missing values, missing files, labels out of range."""


def register_resolvers() -> None:
    """``${embedded_encoder:}`` -> the encoder directory inside the installed package;
    ``${swept_overrides:}`` -> a multirun job's directory name (conf/hydra/default.yaml)."""
    if not OmegaConf.has_resolver("embedded_encoder"):
        OmegaConf.register_new_resolver("embedded_encoder", embedded_encoder_path)
    if not OmegaConf.has_resolver("swept_overrides"):
        OmegaConf.register_new_resolver("swept_overrides", swept_overrides)


def swept_overrides() -> str:
    """The overrides of this multirun job that the sweep varies, as ``key=value,key=value``:
    those given as sweeps on the command line (``lr=1e-4,5e-5``) and a sweeper's search space
    (``hydra.sweeper.params``). What every job shares is in each run's config.yaml instead."""
    import sys

    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = HydraConfig.get()
    parser = OverridesParser.create()
    command_line = [arg for arg in sys.argv[1:] if "=" in arg and not arg.startswith("-")]
    swept = {o.get_key_element() for o in parser.parse_overrides(command_line) if o.is_sweep_override()}
    swept |= set(OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {})
    job = [o for o in parser.parse_overrides(list(hydra_cfg.overrides.task)) if o.get_key_element() in swept]
    # A value with a slash (a path) would nest directories.
    return ",".join(f"{o.get_key_element()}={o.get_value_element_as_str()}".replace("/", "_") for o in job) or "job"


def require_values(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            "missing required config values (give them on the command line, e.g. "
            f"{missing[0]}=...): {', '.join(missing)}"
        )


def require_files(paths: dict[str, str | None]) -> None:
    for key, path in paths.items():
        if not path or Path(path).is_file():
            continue
        if Path(path).is_dir():
            raise ConfigError(f"{key}: is a directory, expected a file: {path} (override {key}=...)")
        problem = "broken or looping symlink" if Path(path).is_symlink() else "file not found"
        raise ConfigError(f"{key}: {problem}: {path} (run `make data`, or override {key}=...)")


# Values Lightning and NeMo would reject only after the 20 s NeMo import and the model build
# (or, for a string where a number belongs, with a traceback deep inside the loop).
_POSITIVE_INTS = ("trainer.num_nodes", "trainer.accumulate_grad_batches", "trainer.log_every_n_steps",
                  "model.train_ds.batch_size", "model.validation_ds.batch_size", "model.test_ds.batch_size",
                  "model.dataset.max_seq_length")
_INTS = ("seed", "trainer.max_epochs", "trainer.max_steps", "trainer.num_sanity_val_steps")
_NON_NEGATIVE_INTS = ("model.freeze_embeddings_epochs", "model.average_last_epochs")
_NUMBERS = ("trainer.limit_train_batches", "trainer.limit_val_batches", "trainer.limit_test_batches",
            "trainer.val_check_interval", "trainer.gradient_clip_val", "model.optim.lr",
            "model.optim.weight_decay", "model.layerwise_lr_decay")
_BOOLS = ("trainer.enable_progress_bar", "trainer.deterministic", "exp_manager.resume_if_exists",
          "exp_manager.create_checkpoint_callback", "exp_manager.create_early_stopping_callback", "model.compile",
          "model.unpadded", "model.decay_norms_and_biases", "model.propagate_abbreviations")


_CHOICES = {"model.classifier_head.pooling": ("cls", "pooler", "mean"), "model.attention": ("sdpa", "eager"),
            "model.dataset.long_text": STRATEGIES, "model.dataset.context": ("sentence", "document"),
            "model.compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")}


def check_choice(key: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")


def check_types(cfg: DictConfig) -> None:
    """``error: <key>: reason`` for a value of the wrong type, before anything is built."""

    def is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    checks = [(_POSITIVE_INTS, lambda v: is_int(v) and v > 0, "a positive integer"),
              (_INTS, is_int, "an integer"),
              (_NON_NEGATIVE_INTS, lambda v: is_int(v) and v >= 0, "a non-negative integer"),
              (_NUMBERS, lambda v: is_int(v) or isinstance(v, float), "a number"),
              (_BOOLS, lambda v: isinstance(v, bool), "true or false")]
    for keys, valid, expected in checks:
        for key in keys:
            value = OmegaConf.select(cfg, key, default=None)
            if value is not None and not valid(value):
                raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    for key, choices in _CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            check_choice(key, value, choices)
    if OmegaConf.select(cfg, "model.unpadded", default=False) and OmegaConf.select(cfg, "model.compile", default=False):
        raise ConfigError("model.unpadded=true with model.compile=true: every batch's token count would be a new "
                          "shape to compile; choose one")
    averaged = OmegaConf.select(cfg, "model.average_last_epochs", default=0)
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if averaged and (max_epochs is None or not 0 < averaged <= max_epochs):
        raise ConfigError(f"model.average_last_epochs={averaged} needs at least that many epochs in "
                          f"trainer.max_epochs (got {max_epochs})")
    if OmegaConf.select(cfg, "model.compile_mode", default=None) and not OmegaConf.select(cfg, "model.compile",
                                                                                        default=False):
        raise ConfigError("model.compile_mode is set but model.compile is false: add model.compile=true")


def check_layerwise_lr_decay(cfg: DictConfig) -> None:
    """``model.layerwise_lr_decay`` in (0, 1], and < 1 only with a scheduler that keeps per-group rates."""
    from bertlab.optim import FLATTENING_SCHEDULERS

    decay = OmegaConf.select(cfg, "model.layerwise_lr_decay", default=None)
    if decay is None or decay == 1:
        return
    if not 0 < decay < 1:
        raise ConfigError(f"model.layerwise_lr_decay: expected a number in (0, 1], got {decay!r}")
    scheduler = OmegaConf.select(cfg, "model.optim.sched.name", default=None)
    if scheduler in FLATTENING_SCHEDULERS:
        raise ConfigError(f"model.layerwise_lr_decay={decay} needs a scheduler that keeps each layer's rate; "
                          f"{scheduler} gives every layer the head's (use the default "
                          "model.optim.sched.name=PolynomialDecayAnnealing: the same linear decay, per layer)")
