"""Train one Hugging Face recipe with bertlab and with the Trainer from the same start, on the
same examples in the same order, dropout off, and compare them step by step (bertlab/parity.py).

  python scripts/check_parity.py                                 # TC: the grid's lr_1e-4_warmup_0
  python scripts/check_parity.py --task ner --samples 256 --out experiments/parity/ner.json
  python scripts/check_parity.py model.dataset.pad_to_multiple_of=1   # then bertlab's Hydra overrides
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bertlab.cli import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of bertlab's side (conf/train_<task>.yaml)")
    parser.add_argument("--task", choices=("tc", "ner"), default="tc")
    parser.add_argument("--hf-candidate", default="lr_1e-4_warmup_0",
                        help="a Hugging Face recipe of the task's grid; bertlab trains the same settings with Hugging "
                             "Face's head (default: lr_1e-4_warmup_0, its chosen recipe; without warmup both "
                             "schedules are the same)")
    parser.add_argument("--grid", type=Path, default=None, help="default: conf/quality/<task>.yaml")
    parser.add_argument("--samples", type=int, default=64,
                        help="the first N training abstracts or sentences (default 64; 0: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", default=None, help="default: data/ncbi_tc3 or data/ncbi_ner (make data)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)

    from bertlab.bench_speed import REPO
    from bertlab.io import atomic_write
    from bertlab.parity import format_report, run_parity

    grid = args.grid or REPO / "conf" / "quality" / f"{args.task}.yaml"
    with tempfile.TemporaryDirectory(prefix="parity-") as work_dir:
        report = run_parity(args.task, args.hf_candidate, grid, args.seed, args.epochs, args.samples, Path(work_dir),
                            args.data_dir, tuple(args.overrides))
    print(format_report(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out) as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
