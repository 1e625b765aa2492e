"""Test scores of bertlab and a Hugging Face Trainer, same encoder, recipes chosen on dev, over seeds.

  python scripts/benchmark_quality.py [--task tc|ner] [--seeds 1,2,3] [--pipelines bertlab,hf]
      [--grid conf/quality/<task>.yaml] [--candidates NAME,...] [--out-dir DIR (resumes)]
      [--max-train N] [--max-eval N]

Prints and writes quality.json and quality.md into the output directory; exits 1 when
bertlab misses the grid's target or its margin over Hugging Face.
"""

import sys

from bertlab.cli import exit_on_user_error


@exit_on_user_error
def main() -> int:
    from bertlab.bench_quality import main as bench

    return bench(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
