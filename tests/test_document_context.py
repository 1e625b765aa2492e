"""NER with document context: each sentence read beside the others of its abstract."""

from __future__ import annotations

import pytest
from conftest import compose_config, tiny_ner_run
from omegaconf import open_dict

from bertlab.config import ConfigError
from bertlab.data.iob import document_runs, read_nemo
from bertlab.nemo_data import document_rows


def test_rows_hold_consecutive_sentences_of_one_document_within_the_budget() -> None:
    lengths = [4, 3, 5, 9, 2, 2, 12, 1]
    documents = ["a", "a", "a", "a", "b", "b", "b", "c"]
    rows = document_rows(lengths, documents, budget=10)
    # 4+3 fit, 5 would not; 5 alone (then 9 would not); a new document starts a row; 12 is over
    # the budget on its own: a row of its own, cut by the tokenizer's max_seq_length as before.
    assert [list(r) for r in rows] == [[0, 1], [2], [3], [4, 5], [6], [7]]
    assert [list(r) for r in document_rows(lengths, [None] * 8, budget=100)] == [list(range(8))]
    assert document_rows([], [], budget=10) == []


def test_document_runs_group_consecutive_items_of_one_document() -> None:
    documents = ["a", "a", "b", "a", "a", "a"]
    assert document_runs(documents, 6) == [[0, 1], [2], [3, 4, 5]]  # "a" again later: a new run
    assert document_runs(None, 3) == [[0], [1], [2]]
    # An item left out (one the predictor could not read) ends its run and is in none.
    assert document_runs(documents, 6, keep=[True, True, True, True, False, True]) == [[0, 1], [2], [3], [5]]


def test_the_dataset_reads_whole_abstracts_with_every_word_labelled(tiny_ner_documents) -> None:
    from nemo.collections.nlp.modules import get_tokenizer

    from bertlab.encoders import embedded_encoder_path
    from bertlab.nemo_data import label_ids_and_weights, token_classification_dataset

    data = tiny_ner_documents
    tokenizer = get_tokenizer(tokenizer_name=embedded_encoder_path())
    label_ids, _ = label_ids_and_weights(data / "labels_train.txt", "O", weighted=False)
    sentences = read_nemo(data / "text_train.txt", data / "labels_train.txt", data / "docs_train.txt")

    def rows(context: str, max_seq_length: int = 512):
        return token_classification_dataset(tokenizer, data / "text_train.txt", data / "labels_train.txt",
                                            max_seq_length, label_ids, "O", False, True, context=context,
                                            documents_path=data / "docs_train.txt")

    by_document, by_sentence = rows("document"), rows("sentence")
    assert len(by_sentence.all_input_ids) == len(sentences)
    assert len(by_document.all_input_ids) == 6  # five abstracts, one over 510 subtokens: two rows
    # Every word's first subtoken carries its label, in order, as in the sentence rows.
    names = {v: k for k, v in label_ids.items()}

    def word_labels(dataset):
        return [names[int(label)] for labels, mask in zip(dataset.all_labels, dataset.all_subtokens_mask)
                for label, first in zip(labels, mask) if first]

    assert word_labels(by_document) == word_labels(by_sentence) == [t for s in sentences for t in s.tags]
    # A shorter budget packs fewer sentences a row, never splitting one.
    assert len(sentences) > len(rows("document", 64).all_input_ids) > 5


@pytest.fixture(scope="module")
def document_run(tiny_ner_documents, tmp_path_factory):
    return tiny_ner_run(tiny_ner_documents, tmp_path_factory.mktemp("exp"), ["model.dataset.context=document"])


def test_a_document_context_run_trains_tests_and_tags_documents(document_run, tiny_ner_documents) -> None:
    from bertlab.predict import Predictor

    result = document_run
    predictor = Predictor.load(result.nemo_path)
    assert predictor.context == "document"
    test = read_nemo(tiny_ner_documents / "text_test.txt", tiny_ner_documents / "labels_test.txt",
                     tiny_ner_documents / "docs_test.txt")
    sentences, documents = [list(s.words) for s in test], [s.document for s in test]
    together = predictor.tag(sentences, documents)
    # The same as tagging each abstract as one text (the test abstracts fit in max_seq_length: 64
    # in the shrunk config, so each is read in overlapping windows), split back into sentences.
    whole = {}
    for name in dict.fromkeys(documents):
        words = [w for s, d in zip(sentences, documents) if d == name for w in s]
        whole[name] = list(predictor.tag([words])[0].tags)
    expected = []
    for words, name in zip(sentences, documents):
        expected.append(tuple(whole[name][:len(words)]))
        whole[name] = whole[name][len(words):]
    assert [t.tags for t in together] == expected
    assert all(t.windows > 1 for t in together)
    alone = predictor.tag(sentences)  # without documents: each sentence alone, in fewer windows
    assert all(a.windows <= t.windows for a, t in zip(alone, together)) and alone != together
    # The test pass of the run read the documents too: its predictions are the together ones.
    predicted = (result.log_dir / "predictions.conll").read_text().split("\n\n")
    assert [tuple(line.split("\t")[2] for line in block.splitlines()) for block in predicted if block.strip()] \
        == [t.tags for t in together]


def test_a_sentence_model_ignores_documents(ner_run, tiny_ner) -> None:
    from bertlab.predict import Predictor

    predictor = Predictor.load(ner_run.nemo_path)
    assert predictor.context == "sentence"
    sentences = [list(s.words) for s in read_nemo(tiny_ner / "text_test.txt", tiny_ner / "labels_test.txt")]
    assert predictor.tag(sentences, ["one"] * len(sentences)) == predictor.tag(sentences)


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.dataset.context=paragraph"], "model.dataset.context: expected one of sentence, document"),
    (["model.dataset.context=document", "model.test_ds.documents_file=missing.txt"],
     "model.test_ds.documents_file: file not found"),
])  # fmt: skip
def test_bad_context_settings_are_config_errors(tiny_ner_documents, overrides, message) -> None:
    from bertlab.config import check_types
    from bertlab.tasks import check_token_classification

    cfg = compose_config("train_ner", overrides)
    with open_dict(cfg):
        cfg.data.dir = str(tiny_ner_documents)
    with pytest.raises(ConfigError, match=message):
        check_types(cfg)  # the keys' types and choices, then the files
        check_token_classification(cfg)


def test_the_cli_reads_conll_documents_together(document_run, tiny_ner_documents, tmp_path) -> None:
    from bertlab.predict import Predictor
    from bertlab.predict_io import predict_files

    test = read_nemo(tiny_ner_documents / "text_test.txt", tiny_ner_documents / "labels_test.txt",
                     tiny_ner_documents / "docs_test.txt")
    blocks, previous = [], None
    for sentence in test:
        if sentence.document != previous:
            blocks.append("-DOCSTART-\tO\n")
            previous = sentence.document
        blocks.append("".join(f"{word}\tO\n" for word in sentence.words))
    (tmp_path / "test.conll").write_text("\n".join(blocks))
    predictor = Predictor.load(document_run.nemo_path)
    assert predict_files(predictor, [str(tmp_path / "test.conll")], tmp_path / "out.conll", "conll") == 0
    written = [tuple(line.split("\t")[1] for line in block.splitlines())
               for block in (tmp_path / "out.conll").read_text().split("\n\n") if block.strip()]
    expected = predictor.tag([list(s.words) for s in test], [s.document for s in test])
    assert written == [t.tags for t in expected]


def test_the_abbreviation_step_reads_documents_when_they_are_there(tiny_ner_documents, tiny_ner, caplog) -> None:
    from bertlab.tasks import check_token_classification, token_classification_files

    for data, has_documents in ((tiny_ner_documents, True), (tiny_ner, False)):
        cfg = compose_config("train_ner", ["model.propagate_abbreviations=true"])
        with open_dict(cfg):
            cfg.data.dir = str(data)
        caplog.clear()
        check_token_classification(cfg)  # no documents files: not an error, a warning
        assert ("model.test_ds.documents_file" in token_classification_files(cfg)) is has_documents
        assert ("each sentence as a document of its own" in caplog.text) is not has_documents
