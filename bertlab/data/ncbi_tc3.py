"""Build the NVIDIA course's "NCBI_tc-3" text-classification set from the NCBI Disease corpus.

Output: ``train.tsv``, ``dev.tsv`` and ``test.tsv``, each with the header row
``sentence<TAB>label`` and then one abstract per line, ``title abstract<TAB>label``, as raw
text (no quoting; tabs and line breaks inside the text become a single space).
Labels: 0 cancer, 1 neurological disorder, 2 other.

Labeling rule (one abstract, from its annotated disease mentions):

1. Each mention is put in a category by keywords on its lower-cased text, tried in
   this order: *cancer* (neoplasms, MeSH C04: cancer, carcinoma, tumo(u)r, neoplas*,
   malignan*, metasta*, leuk(a)emia, Hodgkin, *oma words except the non-tumours in
   :data:`NON_TUMOUR_OMA_WORDS`, and the hereditary tumour syndromes in
   :data:`CANCER_PATTERNS`), then *neurological disorder* (the intent is MeSH C10
   "Nervous System Diseases": brain/spinal/neuromuscular diseases, ataxias,
   epilepsies, dementias, muscular dystrophies and myotonias, intellectual disability,
   and the inborn metabolic brain diseases of C10.228.140.163.100 found in this corpus,
   see :data:`NEURO_PATTERNS`; deafness and blindness are left out as they are mainly
   ear/eye diseases, C09/C11). Cancer is tried first, so "neuroblastoma" is cancer.
2. A mention none of whose keywords match (typically an abbreviation such as "DM" or
   "APC") takes the category of a keyword-matched mention in the same abstract that
   shares one of its concept ids.
3. The abstract gets the category with more mentions (every occurrence counts, all
   mention types); a cancer/neuro tie goes to the category of the earlier mention in
   the text; an abstract with no cancer or neuro mention is 2 (other).

A PMID repeated within one split (8528200 in the training file) is kept once and
logged; repeats whose text or mentions differ are an error.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from bertlab.data.download import ORIGINAL_FILENAMES
from bertlab.data.ncbi_corpus import Abstract, Mention, read_corpus, unique_by_pmid
from bertlab.io import atomic_write

log = logging.getLogger(__name__)

CANCER, NEURO, OTHER = 0, 1, 2
CLASS_NAMES = ("cancer", "neurological disorder", "other")
HEADER = ("sentence", "label")

CANCER_PATTERNS = (
    r"cancer", r"carcinom", r"tumou?r", r"(?<!non)(?<!non-)neoplas", r"malignan", r"metasta",
    r"leuka?emi", r"hodgkin",
    # Hereditary tumour syndromes (MeSH C04.700 and relatives), named without a cancer word.
    r"polyposis", r"adenomatous polyp", r"gardner syndrome", r"li[- ]fraumeni", r"von hippel[- ]lindau",
    r"\bvhl\b", r"neurofibromatos", r"cowden", r"peutz[- ]jeghers", r"tuberous sclerosis", r"\bbrca[12]?\b",
)
# Words ending in -oma that name no neoplasm.
NON_TUMOUR_OMA_WORDS = frozenset({
    "coma", "glaucoma", "hematoma", "haematoma", "scotoma", "xanthoma", "granuloma", "trachoma",
    "atheroma", "stroma", "stoma", "angiokeratoma", "pseudoglioma", "chromosoma",
})
NEURO_PATTERNS = (
    r"\bneuro", r"neuropath", r"neuron", r"\bglial\b", r"oligodendrocyte", r"brain", r"(?<!gluco)cerebr",
    r"cerebell", r"enceph", r"meningitis", r"myelin", r"spinal", r"spina bifida", r"neural tube", r"ataxi",
    r"epilep", r"seizure", r"convuls", r"alzheimer", r"parkinson", r"huntington", r"dementia", r"palsy",
    r"paralys", r"paralyt", r"plegi", r"spastic", r"dystoni", r"chorea", r"tremor", r"migraine", r"autis",
    r"narcolep", r"tourette", r"myasthen", r"amyotrophic", r"multiple sclerosis", r"hydroceph",
    r"microceph", r"lissenceph",
    # Neuromuscular diseases (C10.668): dystrophies, myotonias, myopathies of skeletal muscle.
    r"muscular dystroph", r"muscle dystroph", r"myotonic dystroph", r"dystrophia myotonica",
    r"dystrophin", r"duchenne", r"becker", r"emery[- ]?dreifuss", r"limb[- ]girdle", r"myoton", r"thomsen",
    r"(?<!cardio)myopath", r"charcot[- ]marie", r"friedreich", r"machado[- ]joseph",
    # Intellectual disability (C10.597.606.360) and named syndromes filed under it.
    r"mental(ly)? retard", r"intellectual disab", r"fragile x", r"\brett\b", r"angelman",
    r"prader[- ]willi",
    # Inborn metabolic brain diseases (C10.228.140.163.100).
    r"leukodystroph", r"tay[- ]sachs", r"sandhoff", r"gangliosidos", r"pelizaeus", r"krabbe",
    r"canavan", r"lesch[- ]nyhan", r"menkes", r"wilson disease", r"hepatolenticular",
    r"phenylketonuri", r"zellweger", r"ceroid[- ]lipofuscin", r"batten",
)

_CANCER = re.compile("|".join(CANCER_PATTERNS))
_NEURO = re.compile("|".join(NEURO_PATTERNS))
_OMA_WORD = re.compile(r"\b[a-z]+oma(?=s?\b|ta\b)")
# Any run of characters that would break a TSV row (or a line-based reader) becomes one space.
_ROW_BREAKING = re.compile(r"[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")


def mention_category(text: str) -> int:
    """Category of one mention from its text alone: CANCER, NEURO or OTHER."""
    lowered = text.lower()
    if _CANCER.search(lowered) or any(w not in NON_TUMOUR_OMA_WORDS for w in _OMA_WORD.findall(lowered)):
        return CANCER
    if _NEURO.search(lowered):
        return NEURO
    return OTHER


def mention_categories(mentions: Iterable[Mention]) -> list[tuple[Mention, int]]:
    """Categories of an abstract's mentions; unmatched ones inherit via a shared concept id."""
    mentions = list(mentions)
    by_text = [mention_category(m.text) for m in mentions]
    concept_category: dict[str, int] = {}
    for mention, category in zip(mentions, by_text):
        if category != OTHER:
            for concept in mention.concept_ids:
                # Cancer wins a concept claimed by both, matching the keyword order.
                concept_category[concept] = min(category, concept_category.get(concept, OTHER))
    resolved = []
    for mention, category in zip(mentions, by_text):
        if category == OTHER:
            category = min((concept_category.get(c, OTHER) for c in mention.concept_ids), default=OTHER)
        resolved.append((mention, category))
    return resolved


def label_abstract(abstract: Abstract) -> int:
    """Class label of one abstract (see the module docstring for the rule)."""
    categorized = sorted(
        ((m, c) for m, c in mention_categories(abstract.mentions) if c != OTHER),
        key=lambda pair: pair[0].start,
    )
    if not categorized:
        return OTHER
    counts = Counter(category for _, category in categorized)
    if counts[CANCER] != counts[NEURO]:
        return CANCER if counts[CANCER] > counts[NEURO] else NEURO
    return categorized[0][1]


def tsv_sentence(abstract: Abstract) -> str:
    """The abstract's text on one line: title, a space, the abstract."""
    return _ROW_BREAKING.sub(" ", abstract.text).strip()


def write_tc3_split(abstracts: Iterable[Abstract], out_path: str | Path) -> Counter:
    """Write one split's TSV atomically; return its class counts."""
    counts: Counter = Counter()
    with atomic_write(out_path) as handle:
        handle.write("\t".join(HEADER) + "\n")
        for abstract in abstracts:
            label = label_abstract(abstract)
            counts[label] += 1
            handle.write(f"{tsv_sentence(abstract)}\t{label}\n")
    return counts


def build_tc3(source_dir: str | Path, out_dir: str | Path) -> dict[str, Counter]:
    """Write ``{train,dev,test}.tsv`` into ``out_dir`` from the corpus files in ``source_dir``.

    Returns the class counts per split (keys are the integer labels).
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    abstracts_by_split = {}
    # Read every split before writing any, so a bad source file leaves no mixed old/new dataset.
    for split, filename in ORIGINAL_FILENAMES.items():
        source = source_dir / filename
        abstracts_by_split[split], repeated = unique_by_pmid(read_corpus(source), source)
        if repeated:
            log.warning("%s: kept the first copy of repeated PMIDs %s", source, ", ".join(repeated))
    return {
        split: write_tc3_split(abstracts, out_dir / f"{split}.tsv") for split, abstracts in abstracts_by_split.items()
    }


def format_class_counts(counts_by_split: Mapping[str, Counter]) -> str:
    """A plain-text table: one row per class, one column per split, plus totals."""
    splits = list(counts_by_split)
    rows = [["class", *splits]]
    for label, name in enumerate(CLASS_NAMES):
        rows.append([f"{label} {name}", *(str(counts_by_split[s][label]) for s in splits)])
    rows.append(["total", *(str(sum(counts_by_split[s].values())) for s in splits)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    )
