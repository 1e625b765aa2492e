"""bertlab's training against the Hugging Face Trainer's, step for step (bertlab/parity.py)."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO
from hydra.core.global_hydra import GlobalHydra

from bertlab.config import ConfigError
from bertlab.parity import run_parity


def shrunk_grid(task, directory, max_seq_length=64):
    """The task's real grid, its Hugging Face defaults shrunk: ``max_seq_length`` subtokens, batches of 16."""
    grid = yaml.safe_load((REPO / "conf" / "quality" / f"{task}.yaml").read_text())
    grid["hf_defaults"].update(max_seq_length=max_seq_length, batch_size=16)
    path = directory / f"{task}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.fixture
def short_grid(tmp_path):
    return shrunk_grid("tc", tmp_path)


def parity(grid, data_dir, work_dir, *overrides, candidate="lr_1e-4_warmup_0", task="tc"):
    GlobalHydra.instance().clear()
    return run_parity(task, candidate, grid, seed=1, epochs=2, num_samples=48, work_dir=work_dir,
                      data_dir=str(data_dir), overrides=overrides)


def test_bertlab_trains_hugging_face_recipe_as_the_trainer_does(short_grid, tiny_tc3, tmp_path):
    report = parity(short_grid, tiny_tc3, tmp_path)
    assert report["step_counts"] == [6, 6]  # 48 abstracts, batches of 16, 2 epochs
    assert all(step["same_inputs"] for step in report["steps"])
    for step in report["steps"]:
        assert step["bertlab_lr"] == pytest.approx(step["hf_lr"], rel=1e-6)
        assert step["bertlab_loss"] == pytest.approx(step["hf_loss"], rel=1e-4)
    assert report["steps"][-1]["hf_loss"] != pytest.approx(report["steps"][0]["hf_loss"], rel=1e-3)  # it trained
    assert report["model_relative_gap"] < 1e-3
    assert report["worst_relative_gap"] < 1e-2
    assert not report["missing"]
    assert report["dropout"]["bertlab"] == report["dropout"]["hf"] == [0.1] * 20  # embeddings, 6 x 3 layers, head


def test_bertlab_tags_as_the_trainer_does(tiny_ner, tmp_path):
    # NER's 128 subtokens: NeMo keeps the tail of a longer sentence, the Trainer its head (5 of
    # NCBI's 5432 training sentences); at 64 some of these sentences would differ.
    report = parity(shrunk_grid("ner", tmp_path, max_seq_length=128), tiny_ner, tmp_path, task="ner")
    assert report["step_counts"] == [6, 6]  # 48 sentences, batches of 16, 2 epochs
    assert all(step["same_inputs"] for step in report["steps"])
    for step in report["steps"]:
        assert step["bertlab_lr"] == pytest.approx(step["hf_lr"], rel=1e-6)
        assert step["bertlab_loss"] == pytest.approx(step["hf_loss"], rel=1e-4)
    assert report["model_relative_gap"] < 1e-3
    assert not report["missing"]  # neither has a pooler
    assert report["dropout"]["bertlab"] == report["dropout"]["hf"] == [0.1] * 20


def test_parity_shows_where_nemo_warmup_differs(short_grid, tiny_tc3, tmp_path):
    report = parity(short_grid, tiny_tc3, tmp_path, candidate="lr_1e-4")  # 10% warmup of 6 steps
    assert report["warmup_steps"] == {"bertlab": 0, "hf": 1}  # NeMo would round 0.6 down; both get the Trainer's 1
    first, *rest = report["steps"]
    assert (first["bertlab_lr"], first["hf_lr"]) == (pytest.approx(5e-5), 0)  # NeMo: (s + 1) / (w + 1); HF: s / w
    assert all(step["bertlab_lr"] == pytest.approx(step["hf_lr"], rel=1e-6) for step in rest)
    assert first["bertlab_loss"] == pytest.approx(first["hf_loss"], rel=1e-5)
    assert rest[-1]["bertlab_loss"] != pytest.approx(rest[-1]["hf_loss"], rel=1e-4)


def test_parity_sees_a_learning_rate_ten_percent_off(short_grid, tiny_tc3, tmp_path):
    report = parity(short_grid, tiny_tc3, tmp_path, "model.optim.lr=1.1e-4")
    assert report["steps"][0]["bertlab_loss"] == pytest.approx(report["steps"][0]["hf_loss"], rel=1e-5)
    assert report["steps"][-1]["bertlab_loss"] != pytest.approx(report["steps"][-1]["hf_loss"], rel=1e-4)
    assert report["model_relative_gap"] > 0.05


def test_parity_refuses_a_head_the_trainer_does_not_have(short_grid, tiny_tc3, tiny_ner, tmp_path):
    with pytest.raises(ConfigError, match="pooling=pooler"):
        parity(short_grid, tiny_tc3, tmp_path, "model.classifier_head.pooling=cls")
    with pytest.raises(ConfigError, match="ignore_extra_tokens=true"):  # the loss on every subtoken
        parity(shrunk_grid("ner", tmp_path), tiny_ner, tmp_path, "model.dataset.ignore_extra_tokens=false", task="ner")
