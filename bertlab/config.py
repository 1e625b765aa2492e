"""Config plumbing: the OmegaConf resolvers the YAML uses and checks that run before any
model is built, so a config error costs a second, not a NeMo import and a model load."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bertlab.encoders import embedded_encoder_path


class ConfigError(ValueError):
    """A config that cannot train: missing values, missing files, labels out of range."""


def register_resolvers() -> None:
    """``${embedded_encoder:}`` -> the encoder directory inside the installed package."""
    if not OmegaConf.has_resolver("embedded_encoder"):
        OmegaConf.register_new_resolver("embedded_encoder", embedded_encoder_path)


def require_values(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            "missing required config values (give them on the command line, e.g. "
            f"{missing[0]}=...): {', '.join(missing)}"
        )


def require_files(paths: dict[str, str | None]) -> None:
    for key, path in paths.items():
        if path and not Path(path).is_file():
            raise ConfigError(f"{key}: file not found: {path} (run `make data`, or override {key}=...)")
