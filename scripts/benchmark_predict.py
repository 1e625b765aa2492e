"""Prediction speed: bertlab's Predictor against NeMo's add_predictions and classifytext.

  python scripts/benchmark_predict.py --ner experiments/ner/<v>/ner.nemo \
      --tc experiments/text_classification/<v>/text_classification.nemo [--device cuda]

Same restored model, same inputs (the NCBI test split built by `make data`): prints wall
times, speed-ups and how many predictions agree; --output writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ner", type=Path, help="a NER .nemo")
    parser.add_argument("--tc", type=Path, help="a text classification .nemo")
    parser.add_argument("--ner-text", type=Path, default=Path("data/ncbi_ner/text_test.txt"))
    parser.add_argument("--tc-tsv", type=Path, default=Path("data/ncbi_tc3/test_nemo_format.tsv"))
    parser.add_argument("--device", help="cpu or cuda (default: a GPU if present)")
    parser.add_argument("--precision", help="bertlab's: 32, 16-mixed, bf16-mixed (default: 16-mixed on GPU, 32 on "
                                            "CPU); NeMo's inference is left as NeMo runs it")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timed runs")
    parser.add_argument("--output", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if not (args.ner or args.tc):
        parser.error("give --ner and/or --tc")

    from bertlab.benchmark import benchmark_classification, benchmark_tagging, prediction_report
    from bertlab.io import atomic_write

    options = {"repeats": args.repeats, "precision": args.precision}
    tagging = benchmark_tagging(args.ner, args.ner_text, args.device, **options) if args.ner else None
    classification = benchmark_classification(args.tc, args.tc_tsv, args.device, **options) if args.tc else None
    print(prediction_report(tagging, classification, args.device or "auto"))
    if args.output:
        with atomic_write(args.output) as handle:
            json.dump({"ner": tagging, "classification": classification}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
