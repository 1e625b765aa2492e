"""Run logging: each line once, in the run directory, without NeMo's dataset dumps.

Hydra's console handler (conf/hydra/job_logging/bertlab.yaml) is the only one on the root
logger; :func:`setup_run_logging` adds the run's ``train.log`` beside it once exp_manager has
made the run directory. NeMo keeps its own handlers (and its own ``nemo_log_*.txt``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

RUN_LOG = "train.log"
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"

# NeMo's datasets print the first examples as rows of hundreds of ids, every split, every run.
# exp_manager prints its whole config schema as one line.
_NEMO_EXAMPLE_DUMP = re.compile(
    r"^(\*\*\* Example \*\*\*|example \d+: |i: \d|subtokens: |input_ids: |segment_ids: |input_mask: |"
    r"loss_mask: |subtokens_mask: |labels?: |ExpManager schema|\{'explicit_log_dir': )"
)


class NemoQuietFilter(logging.Filter):
    """Drops NeMo's example dumps, and repeats of a warning already shown in this process."""

    def __init__(self):
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno <= logging.INFO and _NEMO_EXAMPLE_DUMP.match(message):
            return False
        if record.levelno == logging.WARNING:
            if message in self._seen:
                return False
            self._seen.add(message)
        return True


_quiet_filter = NemoQuietFilter()


def quiet_nemo(verbose: bool) -> None:
    """Install (or with ``verbose``, remove) the filter on NeMo's logger."""
    nemo_logger = logging.getLogger("nemo_logger")
    if verbose:
        nemo_logger.removeFilter(_quiet_filter)
    elif _quiet_filter not in nemo_logger.filters:
        nemo_logger.addFilter(_quiet_filter)


def print_lightning_once() -> None:
    """Lightning adds its own console handler at import and also propagates to the root
    logger: with Hydra's console handler on the root, every line would print twice."""
    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()


def setup_run_logging(log_dir: Path | None) -> None:
    """``log_dir/train.log`` receives what the console shows (replacing a previous run's
    handler in the same process: multirun jobs); None: no run log (DDP ranks > 0)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_bertlab_run_log", False)]:
        root.removeHandler(handler)
        handler.close()
    # NeMo's exp_manager adds a file handler per run and never removes the previous one.
    nemo_logger = logging.getLogger("nemo_logger")
    for handler in [h for h in nemo_logger.handlers if isinstance(h, logging.FileHandler)]:
        if log_dir is None or Path(handler.baseFilename).parent != Path(log_dir).resolve():
            nemo_logger.removeHandler(handler)
            handler.close()
    if log_dir is None:
        return
    handler = logging.FileHandler(Path(log_dir) / RUN_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._bertlab_run_log = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
