"""Training speed of bertlab against stock NeMo and Hugging Face, each in its own process.

  python scripts/benchmark_speed.py [--task ner|tc] [--device cuda|cpu]
      [--encoder minilm|base-random|tiny-random] [--epochs 5] [--precision auto] [--max-train N]

Prints a table and writes speed.json and speed.md into the output directory.
"""

import sys

from bertlab.cli import exit_on_user_error


@exit_on_user_error
def main() -> int:
    from bertlab.bench_speed import main as bench

    return bench(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
