"""Bad and awkward inputs for every reader, run through its script or pre-check.

Each malformed file in ``tests/bad_inputs/`` must give exit code 2 and one line
``error: FILE[:LINE]: reason`` (through :func:`bertlab.cli.exit_on_user_error`), create or
change no file, and leave the input as it was. Files named ``valid_*`` are awkward but
valid (BOM, CRLF, mixed line ends, trailing blank lines, the course's ``2  `` labels) and
must be read with the right result. What cannot be committed (a 5 MB line, a directory or
a symlink loop where a file belongs) is made here. Scripts are called in-process through
their ``main(argv)``; a sample runs as subprocesses for the real exit codes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from bertlab.cli import exit_on_user_error
from bertlab.data.download import ORIGINAL_FILENAMES
from bertlab.data.iob import (
    Sentence,
    check_nemo_token_data,
    convert_file,
    nemo_to_conll,
    read_iob,
    read_nemo,
    write_conll,
)
from bertlab.data.ncbi_iob import corpus_to_iob
from bertlab.data.tsv import read_labeled_tsv
from bertlab.io import DataError

BAD = Path(__file__).parent / "bad_inputs"
FIVE_MB = 5 * 1024 * 1024


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strip_main = load_script("strip_tsv_header").main
iob_main = load_script("iob_to_nemo").main
predict_main = load_script("predict").main


def call(function, *args) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of an entry point called in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = function(*args)
        except SystemExit as exit_:
            code = exit_.code
    return code or 0, out.getvalue(), err.getvalue()


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with its content hash, to show nothing was created or changed."""
    files = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        files.update({str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()})
    return files


def assert_user_error(result: tuple[int, str, str], where: Path | str, line: int | None, reason: str) -> None:
    code, _, stderr = result
    location = re.escape(str(where)) + (f":{line}" if line is not None else "")
    assert code == 2, stderr
    assert re.fullmatch(rf"error: {location}: {reason}.*\n", stderr), stderr


# --- runners: one per reader -------------------------------------------------------------


def run_course_tsv(case: Path, out: Path):
    return call(strip_main, [str(case), "--num-classes", "3", "--out-dir", str(out)])


def run_nemo_tsv(case: Path, out: Path):
    from bertlab.tasks import check_text_classification  # the training pre-check, no NeMo import

    good = out.parent / "good.tsv"
    good.write_text("fine\t0\n")
    cfg = OmegaConf.create({"model": {"dataset": {"num_classes": 3}, "class_names": None,
                                      "train_ds": {"file_path": str(case)},
                                      "validation_ds": {"file_path": str(good)},
                                      "test_ds": {"file_path": str(good)}}})
    return call(exit_on_user_error(check_text_classification), cfg)


def run_conll(case: Path, out: Path):
    argv = [str(case), str(out)]
    if case.is_file():
        argv += ["--split", "train"]
    if ".strict." in case.name:
        argv.append("--strict")
    if ".iob2." in case.name:
        argv += ["--scheme", "iob2"]
    return call(iob_main, argv)


def run_nemo_pairs(case: Path, out: Path):
    files = {"train_ds": ("text_train.txt", "labels_train.txt")}
    if (case / "text_dev.txt").exists():
        files["validation_ds"] = ("text_dev.txt", "labels_dev.txt")
    return call(exit_on_user_error(check_nemo_token_data), case, files)


def ncbi_source(case: Path, root: Path) -> Path:
    """An original-release directory: ``case`` as the train file, a valid file for dev and test."""
    src = root / "src"
    src.mkdir()
    for split, name in ORIGINAL_FILENAMES.items():
        shutil.copyfile(case if split == "train" else BAD / "ncbi" / "valid_inline.txt", src / name)
    return src


def run_ncbi(case: Path, out: Path):
    return call(iob_main, ["--from-original", str(ncbi_source(case, out.parent)), str(out)])


def run_models(case: Path, out: Path):
    """``scripts/predict.py`` with a bad model file: refused before anything is loaded."""
    texts = out.parent / "texts.txt"
    texts.write_text("Familial breast cancer .\n")
    return call(predict_main, [str(case), str(texts), "--output", str(out / "predictions.jsonl")])


RUNNERS = {"models": run_models, "course_tsv": run_course_tsv, "nemo_tsv": run_nemo_tsv, "conll": run_conll,
           "nemo_pairs": run_nemo_pairs, "ncbi": run_ncbi}

# case (relative to bad_inputs/) -> (file named in the message, relative to the case, or "" for
# the case itself; line or None; the reason, a regex)
BAD_CASES = {
    "course_tsv/empty.tsv": ("", None, "empty file: no text<TAB>label rows"),
    "course_tsv/blank_lines_only.tsv": ("", None, "empty file"),
    "course_tsv/header_only.tsv": ("", 1, "header row only, no data rows"),
    "course_tsv/first_row_word_label.tsv": ("", 1, r"label 'one' is not an integer \(a header row's label column"),
    "course_tsv/first_row_arabic_digit_label.tsv": ("", 1, "label '\u0663' is not an integer"),
    "course_tsv/no_tab.tsv": ("", 2, "no tab: expected text<TAB>label"),
    "course_tsv/three_columns.tsv": ("", 2, "3 tab-separated columns, expected 2"),
    "course_tsv/negative_label.tsv": ("", 2, r"label -1 out of range \[0, 3\)"),
    "course_tsv/label_out_of_range.tsv": ("", 3, r"label 3 out of range \[0, 3\)"),
    "course_tsv/float_label.tsv": ("", 1, "label '1.0' is not an integer"),
    "course_tsv/leading_space_label.tsv": ("", 2, "label ' 1' is not an integer"),
    "course_tsv/empty_text.tsv": ("", 2, "empty text"),
    "course_tsv/blank_line_inside.tsv": ("", 2, "empty line"),
    "course_tsv/header_twice.tsv": ("", 2, "label 'label' is not an integer"),
    "course_tsv/invalid_utf8.tsv": ("", 2, "not valid UTF-8"),
    "course_tsv/latin1.tsv": ("", 2, "not valid UTF-8"),
    "course_tsv/nul_byte.tsv": ("", 2, "NUL byte"),
    "course_tsv/utf16.tsv": ("", 1, "NUL byte"),
    "nemo_tsv/header_left_in.tsv": ("", 1, "header row found; NeMo reads it as data"),
    "nemo_tsv/label_out_of_range.tsv": ("", 2, r"label 3 out of range \[0, 3\)"),
    "nemo_tsv/nul_byte.tsv": ("", 2, "NUL byte"),
    "nemo_tsv/first_row_word_label.tsv": ("", 1, "label 'one' is not an integer"),
    "conll/empty.conll": ("", None, "no sentences for the train split"),
    "conll/docstart_only.conll": ("", None, "no sentences for the train split"),
    "conll/one_column.conll": ("", 2, "expected 'word<TAB>tag', found one column"),
    "conll/unknown_tag.conll": ("", 2, "unknown tag 'B_Disease'"),
    "conll/lowercase_prefix.conll": ("", 1, "unknown tag 'b-Disease'"),
    "conll/empty_word.conll": ("", 1, "empty word in the first column"),
    "conll/word_with_space.conll": ("", 1, "word contains whitespace"),
    "conll/i_after_o.strict.conll": ("", 6, "'I-Disease' starts an entity after 'O'"),
    "conll/iobes_b_then_s.conll": ("", 2, "'S-Disease' after 'B-Disease': an IOBES entity must end with E-"),
    "conll/iobes_unclosed_at_end.conll": ("", 4, "'B-Disease' ends the sentence"),
    "conll/iobes_tag_in_iob2.iob2.conll": ("", 2, "tag 'E-X' is not valid in the IOB2 scheme"),
    "conll/invalid_utf8.conll": ("", 2, "not valid UTF-8"),
    "conll/nul_byte.conll": ("", 2, "NUL byte"),
    "conll/test_only_tag": ("test.tsv", 3, r"tag 'B-Chemical' does not occur in the train split \(.*train.tsv\)"),
    "conll/two_files_one_split": ("", None, "two files for split 'dev'"),
    "nemo_pairs/line_count_mismatch": ("labels_train.txt", None, r"1 lines, but .*text_train.txt has 2"),
    "nemo_pairs/token_count_mismatch": ("labels_train.txt", 2, "2 labels for 3 words"),
    "nemo_pairs/i_after_o": ("labels_train.txt", 2, r"tag 'I-Disease' \(word 3\) after 'O': an IOB2 entity"),
    "nemo_pairs/iobes_tag": ("labels_train.txt", 1, r"tag 'E-Disease' \(word 2\) is not IOB2"),
    "nemo_pairs/unknown_tag": ("labels_train.txt", 1, "unknown tag 'B_Disease'"),
    "nemo_pairs/dev_only_tag": ("labels_dev.txt", 2, "tag 'B-Chemical' does not occur in the train split"),
    "nemo_pairs/empty_train": ("labels_train.txt", None, r"no sentences \(empty train_ds split\)"),
    "nemo_pairs/blank_line": ("text_train.txt", 2, "empty line: no words"),
    "nemo_pairs/invalid_utf8": ("text_train.txt", 1, "not valid UTF-8"),
    "ncbi/empty.txt": ("", None, "no abstracts"),
    "ncbi/abstract_without_title.txt": ("", 1, "abstract line for PMID 1 without its title line"),
    "ncbi/mention_outside_abstract.txt": ("", 1, "mention line outside an abstract"),
    "ncbi/mention_few_columns.txt": ("", 3, "mention line has 3 tab-separated columns, expected 6"),
    "ncbi/mention_bad_offsets.txt": ("", 3, "bad mention offsets '4'..'0'"),
    "ncbi/mention_past_the_end.txt": ("", 3, r"mention offsets 6..40 past the end of the text \(11 characters\)"),
    "ncbi/mention_text_mismatch.txt": ("", 3, "mention 'Goat' does not match the text at 0..4"),
    "ncbi/mention_of_other_pmid.txt": ("", 3, "mention of PMID 2 inside abstract 1"),
    "ncbi/overlapping_mentions.txt": ("", 1, "overlapping mentions 'Breast cancer' and 'cancer'"),
    "ncbi/duplicate_pmid_different.txt": ("", 7, "PMID 1 repeats line 1 with different content"),
    "ncbi/inline_unclosed_tag.txt": ("", 1, "unbalanced <category"),
    "ncbi/invalid_utf8.txt": ("", 2, "not valid UTF-8"),
    "models/empty.nemo": ("", None, r"not a NeMo model: not a \.nemo \(tar\) archive"),
    "models/not_an_archive.nemo": ("", None, r"not a NeMo model: not a \.nemo \(tar\) archive"),
    "models/no_config.nemo": ("", None, "not a NeMo model: the archive has no model_config.yaml"),
    "models/config_only_outside.nemo": ("", None, "not a NeMo model: the archive has no model_config.yaml"),
    "models/config_not_yaml.nemo": ("", None, "not a NeMo model: its model_config.yaml is not a config"),
    "models/config_a_list.nemo": ("", None, "not a NeMo model: its model_config.yaml is not a config"),
    "models/config_not_utf8.nemo": ("", None, "not a NeMo model: its model_config.yaml is not UTF-8 text"),
    "models/foreign_target.nemo": ("", None, "not a bertlab model: its class is 'this.Zen'; refusing to import it"),
    "models/no_encoder.nemo": ("", None, "model_config.yaml has no language_model.pretrained_model_name"),
}


def test_every_committed_case_is_listed() -> None:
    committed = {str(p.relative_to(BAD)) for p in BAD.glob("*/*") if not p.name.startswith("valid_")}
    assert committed == set(BAD_CASES)
    assert len([p for p in BAD.rglob("*") if p.is_file() and p.name != ".gitattributes"]) >= 40


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_is_one_located_error_and_writes_nothing(tmp_path: Path, name: str) -> None:
    reader, _ = name.split("/")
    message_file, line, reason = BAD_CASES[name]
    case, out = BAD / name, tmp_path / "out"
    before = snapshot(BAD / reader, tmp_path)
    result = RUNNERS[reader](case, out)
    where = case / message_file if message_file else case
    if reader == "ncbi":  # the file was copied in as the train split
        where = tmp_path / "src" / ORIGINAL_FILENAMES["train"]
    assert_user_error(result, where, line, reason)
    assert not out.exists()
    after = snapshot(BAD / reader, tmp_path)
    made_by_runner = ("good.tsv", "texts.txt")  # valid companions the runners write
    assert {k: v for k, v in after.items() if "/src/" not in k and not k.endswith(made_by_runner)} == {
        k: v for k, v in before.items()
    }


def test_prediction_inputs_are_checked_before_the_model_loads(tmp_path: Path) -> None:
    """A model archive with a valid config but no weights: every input mistake must be caught
    before the (here impossible) model load."""
    model = tmp_path / "ner.nemo"
    config = (b"target: bertlab.models.TokenClassifier\nlanguage_model: {pretrained_model_name: embedded}\n"
              b"tokenizer: {tokenizer_name: embedded}\n")
    with tarfile.open(model, "w:gz") as archive:
        info = tarfile.TarInfo("./model_config.yaml")
        info.size = len(config)
        archive.addfile(info, io.BytesIO(config))
    texts = tmp_path / "texts.txt"
    texts.write_text("Familial breast cancer .\n")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    cases = [([str(tmp_path / "missing.txt")], tmp_path / "missing.txt", "input file not found"),
             ([str(tmp_path)], tmp_path, "is a directory, not an input file"),
             ([str(loop)], loop, "input file not found"),
             ([str(texts), "--output", str(texts)], texts, "output would overwrite input"),
             ([str(texts), "--format", "tsv"], "<stdout>", "--format tsv is not for token_classification models")]
    for args, where, reason in cases:
        before = snapshot(tmp_path)
        assert_user_error(call(predict_main, [str(model), *args]), where, None, re.escape(reason))
        assert snapshot(tmp_path) == before


# --- awkward but valid -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("valid_bom_crlf.tsv", [("first", 0), ("second", 1)]),
        ("valid_mixed_line_ends.tsv", [("first", 0), ("second", 1), ("third", 2)]),
        ("valid_trailing_blank_line.tsv", [("first", 0), ("second", 1)]),
        ("valid_course_label_spaces.tsv", [("first", 2), ("second", 0), ("third", 1)]),
        ("valid_capitalized_header.tsv", [("first", 0)]),
    ],
)
def test_awkward_course_tsv_is_accepted(tmp_path: Path, name: str, rows: list[tuple[str, int]]) -> None:
    code, stdout, stderr = run_course_tsv(BAD / "course_tsv" / name, tmp_path)
    assert (code, stderr) == (0, "")
    output = tmp_path / name.replace(".tsv", "_nemo_format.tsv")
    assert output.read_text(encoding="utf-8") == "".join(f"{text}\t{label}\n" for text, label in rows)
    assert f"{output}: {len(rows)} rows" in stdout


def test_course_label_spaces_pass_the_training_check(tmp_path: Path) -> None:
    assert run_nemo_tsv(BAD / "nemo_tsv" / "valid_course_label_spaces.tsv", tmp_path / "out") == (0, "", "")


def test_awkward_conll_is_accepted(tmp_path: Path) -> None:
    code, stdout, stderr = run_conll(BAD / "conll" / "valid_mixed_line_ends.conll", tmp_path)
    assert (code, stderr) == (0, "")
    assert (tmp_path / "text_train.txt").read_text() == "Reye syndrome\n.\n"
    assert (tmp_path / "labels_train.txt").read_text() == "B-Disease I-Disease\nO\n"
    assert "train: 2 sentences, 3 tokens, 1 mentions" in stdout


def test_awkward_nemo_pair_is_accepted() -> None:
    case = BAD / "nemo_pairs" / "valid_crlf_bom"
    assert check_nemo_token_data(case, {"train_ds": ("text_train.txt", "labels_train.txt")}) == {"train_ds": 2}


@pytest.mark.parametrize(("name", "sentences", "mentions"), [("valid_duplicate_pmid_same.txt", 2, 1),
                                                            ("valid_inline.txt", 2, 2)])
def test_awkward_ncbi_corpus_is_accepted(tmp_path: Path, name: str, sentences: int, mentions: int) -> None:
    code, stdout, stderr = run_ncbi(BAD / "ncbi" / name, tmp_path / "out")
    assert (code, stderr) == (0, "")
    assert f"train: {sentences} sentences" in stdout and f"{mentions} mentions" in stdout
    assert (tmp_path / "out" / "label_ids.csv").read_text() == "O\nB-Disease"


def test_five_megabyte_line_is_read_whole(tmp_path: Path) -> None:
    text = "word " * (FIVE_MB // 5)
    tsv = tmp_path / "long.tsv"
    tsv.write_text(f"sentence\tlabel\n{text}\t1\n")
    assert read_labeled_tsv(tsv, num_classes=3).rows == [(text, 1)]
    conll = tmp_path / "train.tsv"
    conll.write_text(f"{'x' * FIVE_MB}\tB-Disease\n\n.\tO\n")
    sentences, _ = read_iob(conll)
    assert [len(s.words[0]) for s in sentences] == [FIVE_MB, 1]


# --- paths that are not plain files, outputs onto inputs, options --------------------------


def test_directory_and_symlink_loop_where_a_file_belongs(tmp_path: Path) -> None:
    loop = tmp_path / "loop.tsv"
    loop.symlink_to(loop)
    folder = tmp_path / "train.tsv"
    folder.mkdir()
    out = tmp_path / "out"
    assert_user_error(call(strip_main, [str(folder), "--out-dir", str(out)]), folder, None, "is a directory")
    assert_user_error(call(strip_main, [str(loop), "--out-dir", str(out)]), loop, None, "symlink loop")
    assert_user_error(call(iob_main, [str(loop), str(out), "--split", "train"]), loop, None, "symlink loop")
    assert_user_error(call(iob_main, ["--to-conll", str(folder), str(folder), str(out / "x.tsv")]), folder, None,
                      "is a directory")
    missing = tmp_path / "missing.tsv"  # not "cannot tell the split": the file is not there
    assert_user_error(call(iob_main, [str(missing), str(out)]), missing, None, "file not found")
    assert_user_error(run_nemo_tsv(folder, out), "model.train_ds.file_path", None, "is a directory")
    assert not out.exists()


def test_output_onto_an_input_or_into_a_file(tmp_path: Path) -> None:
    tsv, nemo_input = tmp_path / "train.tsv", tmp_path / "train_nemo_format.tsv"
    labels, text, labels_nemo = tmp_path / "labels_train.txt", tmp_path / "text.txt", tmp_path / "labels.txt"
    for path, content in ((tsv, "a\t0\n"), (nemo_input, "b\t1\n"), (labels, "a\tO\n"), (text, "a\n"),
                          (labels_nemo, "O\n")):
        path.write_text(content)
    before = snapshot(tmp_path)
    assert_user_error(call(strip_main, [str(tsv), str(nemo_input)]), nemo_input, None, "output would overwrite input")
    assert_user_error(call(strip_main, [str(tsv), "--out-dir", str(tsv)]), tsv, None, "is not a directory")
    assert_user_error(call(iob_main, [str(labels), str(tmp_path), "--split", "train"]), labels, None,
                      "output would overwrite input")
    assert_user_error(call(iob_main, [str(labels), str(tsv), "--split", "train"]), tsv, None, "is not a directory")
    assert_user_error(call(iob_main, ["--to-conll", str(text), str(labels_nemo), str(labels_nemo)]), labels_nemo,
                      None, "output would overwrite input")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("option", [["--max-words", "0"], ["--max-words", "x"], ["--split", "foo"]])
def test_bad_option_values_are_usage_errors(tmp_path: Path, option: list[str]) -> None:
    source = BAD / "conll" / "valid_mixed_line_ends.conll"
    code, _, stderr = call(iob_main, [str(source), str(tmp_path / "out"), *option])
    assert code == 2 and f"error: argument {option[0]}" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_directory_needs_overwrite(tmp_path: Path) -> None:
    source, out = BAD / "conll" / "valid_mixed_line_ends.conll", tmp_path / "out"
    out.mkdir()
    (out / "text_dev.txt").write_text("old dev\n")
    (out / "labels_dev.txt").write_text("B-Old\n")
    (out / "label_ids.csv").write_text("O\nB-Old")
    before = snapshot(out)
    assert_user_error(call(iob_main, [str(source), str(out), "--split", "train"]), out, None,
                      r"already holds a NeMo dataset \(text_dev.txt, labels_dev.txt, label_ids.csv\); give --overwrite")
    assert snapshot(out) == before
    assert call(iob_main, [str(source), str(out), "--split", "train", "--overwrite"])[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["label_ids.csv", "labels_train.txt", "text_train.txt"]
    assert (out / "label_ids.csv").read_text() == "O\nB-Disease\nI-Disease"


# --- real exit codes: a sample as subprocesses ---------------------------------------------


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("strip_tsv_header.py", ["{bad}/course_tsv/first_row_word_label.tsv", "--out-dir", "{tmp}/out"],
         "error: {bad}/course_tsv/first_row_word_label.tsv:1: label 'one' is not an integer"),
        ("iob_to_nemo.py", ["{bad}/conll/iobes_b_then_s.conll", "{tmp}/out", "--split", "train"],
         "error: {bad}/conll/iobes_b_then_s.conll:2: 'S-Disease' after 'B-Disease'"),
        ("iob_to_nemo.py", ["{bad}/conll/valid_mixed_line_ends.conll", "{tmp}/out", "--max-words", "0"],
         "error: argument --max-words: must be at least 1, got 0"),
        ("prepare_data.py", ["--local-dir", "{tmp}", "--data-dir", "{tmp}/out", "--only", "ner"],
         "error: {tmp}: NCBI Disease original files not found"),  # NER reads both releases
        ("check_parity.py", ["--out", "{tmp}/out/parity.json", "model.classifier_head.num_output_layers=2"],
         "error: parity needs Hugging Face's head in bertlab"),
    ],
)
def test_scripts_exit_2_with_one_line(tmp_path: Path, script: str, args: list[str], message: str) -> None:
    def fill(text: str) -> str:
        return text.format(bad=BAD, tmp=tmp_path)

    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), *map(fill, args)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert fill(message) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# --- properties ------------------------------------------------------------------------------

# Words as NeMo's text files can hold them: no whitespace of any kind (str.split() splits
# there), no NUL, no surrogates (not UTF-8), no BOM (read as one at a file's start).
WORD = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="\ufeff"),
               min_size=1, max_size=8).filter(lambda w: not any(c.isspace() for c in w) and w != "-DOCSTART-")


@st.composite
def iob2_sentence(draw) -> Sentence:
    words = draw(st.lists(WORD, min_size=1, max_size=8))
    tags, previous = [], "O"
    for _ in words:
        choices = ["O", *(f"B-{t}" for t in ("Disease", "Chemical", "X"))]
        if previous != "O":
            choices.append(f"I-{previous[2:]}")
        previous = draw(st.sampled_from(choices))
        tags.append(previous)
    return Sentence(tuple(words), tuple(tags))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(iob2_sentence(), min_size=1, max_size=6))
def test_conll_to_nemo_to_conll_is_lossless(sentences: list[Sentence]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_conll(sentences, root / "train.tsv")
        convert_file(root / "train.tsv", root / "nemo", strict=True)
        assert nemo_to_conll(root / "nemo" / "text_train.txt", root / "nemo" / "labels_train.txt",
                             root / "back.tsv") == len(sentences)
        assert (root / "back.tsv").read_bytes() == (root / "train.tsv").read_bytes()
        back, _ = read_iob(root / "back.tsv")
        assert [(s.words, s.tags) for s in back] == [(s.words, s.tags) for s in sentences]


# Fragments that reach deep into each format, mixed with arbitrary bytes.
FRAGMENTS = ["\t", "\n", "\r\n", "\r", " ", "0", "1", "2  ", "-1", "label", "sentence", "O", "B-Disease",
             "I-Disease", "S-X", "E-X", "B-", "-DOCSTART-", "1|t|", "1|a|", "2|t|", "0\t4", "\tSpecificDisease",
             '<category="X">', "</category>", "Gout", "\ufeff", "\x00", "\u0663", "\u2028"]
RANDOM_TEXT = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(lambda parts: "".join(parts).encode("utf-8")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RANDOM_TEXT, RANDOM_TEXT)
def test_random_input_gives_a_result_or_a_data_error(first: bytes, second: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in.txt").write_bytes(first)
        (root / "text_train.txt").write_bytes(first)
        (root / "labels_train.txt").write_bytes(second)
        readers = [
            lambda: read_labeled_tsv(root / "in.txt", num_classes=3),
            lambda: read_iob(root / "in.txt"),
            lambda: read_iob(root / "in.txt", strict=True, max_words=3),
            lambda: read_iob(root / "in.txt", scheme="iobes"),
            lambda: read_nemo(root / "text_train.txt", root / "labels_train.txt"),
            lambda: check_nemo_token_data(root, {"train_ds": ("text_train.txt", "labels_train.txt")}),
            lambda: corpus_to_iob(root / "in.txt"),
        ]
        for reader in readers:
            with contextlib.suppress(DataError):
                reader()
        # And through the scripts: done (0) or the one-line user error (2), nothing else.
        for main, argv in ((strip_main, [str(root / "in.txt"), "--num-classes", "3", "--out-dir", str(root / "a")]),
                           (iob_main, [str(root / "in.txt"), str(root / "b"), "--split", "train"])):
            code, _, stderr = call(main, argv)
            assert code == 0 or (code == 2 and re.fullmatch(r"error: [^\n]+\n", stderr)), stderr
