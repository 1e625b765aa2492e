"""Error analysis after every test: errors.tsv for NER, a confusion matrix for classification."""

from __future__ import annotations

import csv
import json

import pytest

from bertlab.error_analysis import entity_errors, error_counts
from bertlab.metrics import entity_scores

GOLD = [["B-Disease", "I-Disease", "O", "B-Disease", "O", "O"], ["O", "B-Disease", "O"], ["B-Gene", "O"]]
PRED = [["B-Disease", "O", "O", "O", "O", "B-Disease"], ["O", "I-Disease", "O"], ["B-Disease", "O"]]


def test_each_error_is_counted_once_and_they_add_up_to_the_scores():
    errors = entity_errors(GOLD, PRED)
    assert [(e.kind, e.sentence) for e in errors] == [
        ("boundary", 0), ("false_negative", 0), ("false_positive", 0), ("false_negative", 1), ("type", 2)]
    assert errors[0].gold == (("Disease", 0, 2),) and errors[0].pred == (("Disease", 0, 1),)
    counts = error_counts(errors)
    scores = entity_scores(GOLD, PRED)
    gold_total, pred_total = 4, 3
    true_positives = round(scores["recall"] * gold_total)
    # Every gold entity is found or in exactly one error row; every predicted one too.
    missed = sum(len(e.gold) for e in errors)
    spurious = sum(len(e.pred) for e in errors)
    assert (true_positives + missed, true_positives + spurious) == (gold_total, pred_total)
    assert counts == {"false_negative": 2, "false_positive": 1, "boundary": 1, "type": 1}


def test_a_planted_error_appears_in_errors_tsv(ner_run, tiny_ner, tmp_path):
    """The gold labels get a disease the model cannot know of; evaluating the real model
    must list it as a false negative with its sentence, and the run wrote errors.tsv too."""
    from bertlab.data.iob import Sentence, read_nemo
    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_ner

    gold = read_nemo(tiny_ner / "text_test.txt", tiny_ner / "labels_test.txt")[:10]
    predictor = Predictor.load(ner_run.nemo_path, device="cpu")
    tagged = predictor.tag([list(s.words) for s in gold])
    index, sentence = next((i, s) for i, s in enumerate(gold) if "the" in s.words)
    word = sentence.words.index("the")
    assert sentence.tags[word] == tagged[index].tags[word] == "O"
    planted = list(sentence.tags)
    planted[word] = "B-Disease"
    gold[index] = Sentence(sentence.words, tuple(planted))
    metrics = evaluate_ner(predictor, gold, tmp_path)

    with open(tmp_path / "errors.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {"kind": "false_negative", "sentence": str(index + 1), "type": "Disease", "gold": "the",
            "predicted": "", "text": " ".join(sentence.words)} in rows
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert sum(report["errors"].values()) == len(rows) > 0
    assert metrics["entity_f1"] == pytest.approx(report["entity"]["f1"])
    assert (ner_run.log_dir / "errors.tsv").read_text().startswith("kind\tsentence\ttype\tgold\tpredicted\ttext\n")


def test_confusion_matrix_sums_to_the_test_size(tc_run, tiny_tc3):
    from bertlab.data.tsv import read_labeled_tsv

    rows = read_labeled_tsv(tiny_tc3 / "test_nemo_format.tsv").rows
    report = json.loads((tc_run.log_dir / "metrics.json").read_text())
    matrix = report["confusion_matrix"]["gold_by_pred"]
    assert sum(map(sum, matrix)) == len(rows) == 24
    assert [sum(row) for row in matrix] == [sum(label == k for _, label in rows) for k in range(3)]
    assert sum(matrix[k][k] for k in range(3)) == round(report["accuracy"] * len(rows))
    assert report["confusion_matrix"]["class_names"] == ["cancer", "neurological disorder", "other"]
    png = (tc_run.log_dir / "confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000


def test_compare_links_each_runs_error_analysis(tc_run, ner_run, tmp_path):
    import re

    from bertlab.compare import compare

    markdown_path = tmp_path / "report" / "runs.md"
    result = compare([tc_run.log_dir, ner_run.log_dir], markdown_path=markdown_path, plot_path=tmp_path / "c.png")
    links = dict(re.findall(r"\[(errors\.tsv|confusion_matrix\.png)\]\(([^)]+)\)", markdown_path.read_text()))
    assert set(links) == {"errors.tsv", "confusion_matrix.png"}
    assert (markdown_path.parent / links["errors.tsv"]).resolve() == (ner_run.log_dir / "errors.tsv").resolve()
    assert (markdown_path.parent / links["confusion_matrix.png"]).resolve() == \
        (tc_run.log_dir / "confusion_matrix.png").resolve()
    assert set(map(str, result.table["errors"])) == {str(tc_run.log_dir / "confusion_matrix.png"),
                                                     str(ner_run.log_dir / "errors.tsv")}
