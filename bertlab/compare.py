"""Compare training runs: a table of hyperparameters, metrics and throughput, and a plot of their curves.

A run is an exp_manager directory ``<exp_dir>/<name>/<version>/``: TensorBoard events,
``config.yaml`` (the composed config) and whatever else the run left there. TensorBoard is
imported inside :func:`load_run` and matplotlib inside :func:`plot_scalars`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from bertlab.io import atomic_write

EVENTS_GLOB = "events.out.tfevents.*"
TRAIN_LOSS = "train_loss"
HParam = int | float | str | bool


@dataclass(frozen=True)
class TaskMetrics:
    val: str                # the main validation metric, the one that picks the best checkpoint
    test: tuple[str, ...]   # the test scalars worth a column


TASK_METRICS = {
    "text_classification": TaskMetrics("val_macro_f1", ("test_macro_f1", "test_accuracy")),
    "token_classification": TaskMetrics("val_entity_f1",
                                        ("test_entity_f1", "test_entity_precision", "test_entity_recall")),
}


class NoRunsError(FileNotFoundError):
    """No TensorBoard event files under the given paths."""

    def __init__(self, paths: Sequence[str | os.PathLike]):
        listed = ", ".join(f"{p}" if Path(p).exists() else f"{p} (does not exist)" for p in paths) or "(no paths)"
        super().__init__(f"no runs (directories with {EVENTS_GLOB} files) under: {listed}")


class ScalarPoint(NamedTuple):
    step: int
    wall_time: float
    value: float


@dataclass
class Run:
    path: Path
    name: str
    hparams: dict[str, HParam] = field(default_factory=dict)
    scalars: dict[str, list[ScalarPoint]] = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        task = self.hparams.get("task")
        if task is None:  # no config.yaml nor hparams entry: recognise the task by its validation metric
            task = next((name for name, metrics in TASK_METRICS.items() if metrics.val in self.scalars), None)
        return task

    @property
    def encoder(self) -> str | None:
        return self.hparams.get("encoder.name")

    @property
    def main_metric(self) -> str | None:
        metrics = TASK_METRICS.get(self.task)
        return metrics.val if metrics else None

    def values(self, tag: str) -> list[float]:
        return [point.value for point in self.scalars.get(tag, [])]

    def final(self, tag: str) -> float | None:
        values = self.values(tag)
        return values[-1] if values else None

    def best(self, tag: str) -> float | None:
        values = self.values(tag)
        if not values:
            return None
        return min(values) if "loss" in tag else max(values)

    def test_value(self, tag: str) -> float | None:
        """A ``test_*`` scalar, or its copy in the hparams entry (``hparam/test_*``)."""
        value = self.final(tag)
        return value if value is not None else self.final(f"hparam/{tag}")

    @property
    def steps(self) -> int | None:
        steps = [point.step for points in self.scalars.values() for point in points]
        return max(steps) if steps else None

    @property
    def wall_time(self) -> float | None:
        """Seconds from the first to the last scalar event of the run."""
        times = [point.wall_time for points in self.scalars.values() for point in points]
        return max(times) - min(times) if times else None

    @property
    def steps_per_second(self) -> float | None:
        """Training steps per second of wall time while ``train_loss`` was logged (validation included)."""
        points = self.scalars.get(TRAIN_LOSS, [])
        if len(points) < 2 or points[-1].wall_time <= points[0].wall_time:
            return None
        return (points[-1].step - points[0].step) / (points[-1].wall_time - points[0].wall_time)

    @property
    def samples_per_second(self) -> float | None:
        per_step = samples_per_step(self.hparams)
        steps_per_second = self.steps_per_second
        return per_step * steps_per_second if per_step and steps_per_second else None


def samples_per_step(hparams: dict[str, HParam]) -> int | None:
    """Global batch: batch size x gradient accumulation x devices x nodes; None when any is unknown."""
    factors = [hparams.get("model.train_ds.batch_size"), hparams.get("trainer.accumulate_grad_batches", 1),
               hparams.get("trainer.devices", 1), hparams.get("trainer.num_nodes", 1)]
    # devices=-1 or "auto" depend on the machine the run had, which the record does not say.
    if all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in factors):
        return math.prod(factors)
    return None


# --- finding and loading runs -------------------------------------------------------------------


def _event_dirs(path: Path) -> list[Path]:
    """Directories under ``path`` (itself included) that directly hold event files."""
    return sorted({events.parent for events in path.rglob(EVENTS_GLOB) if events.is_file()})


def find_runs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Run directories under ``paths``: those holding event files, outermost only.

    ``add_hparams(run_name=".")`` writes into the run directory itself; any other run_name,
    and loggers' own version subdirectories, make nested event directories that belong to
    the run above them.
    """
    found = {event_dir for path in paths for event_dir in _event_dirs(Path(path).resolve())}
    return [d for d in sorted(found) if not any(parent in found for parent in d.parents)]


def _read_events(event_dir: Path) -> tuple[dict[str, list[ScalarPoint]], dict[str, HParam]]:
    """All scalars of one event directory, and the hparams of its hparams-plugin entry (if any)."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = event_accumulator.EventAccumulator(str(event_dir), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    scalars = {tag: [ScalarPoint(e.step, e.wall_time, e.value) for e in accumulator.Scalars(tag)]
               for tag in accumulator.Tags()[event_accumulator.SCALARS]}
    hparams: dict[str, HParam] = {}
    try:
        content = accumulator.PluginTagToContent("hparams").get("_hparams_/session_start_info")
    except KeyError:  # no hparams plugin data in this directory
        content = None
    if content:
        for key, value in plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams.items():
            decoded = getattr(value, value.WhichOneof("kind"))
            # The plugin stores every number as a double: give batch sizes and epochs back their int type.
            hparams[key] = int(decoded) if isinstance(decoded, float) and decoded.is_integer() else decoded
    return scalars, hparams


def _config_hparams(run_dir: Path) -> dict[str, HParam]:
    from omegaconf import OmegaConf

    from bertlab.runs import flat_hparams

    config = run_dir / "config.yaml"
    return flat_hparams(OmegaConf.load(config)) if config.is_file() else {}


def load_run(run_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Run:
    """Scalars of every event file under ``run_dir``; hparams from config.yaml, else from the hparams entry.

    The name is the path relative to ``root`` (default: the directory two levels up, giving
    exp_manager's ``<name>/<version>``).
    """
    run_dir = Path(run_dir).resolve()
    root = Path(root).resolve() if root is not None else run_dir.parent.parent
    scalars: dict[str, list[ScalarPoint]] = {}
    tb_hparams: dict[str, HParam] = {}
    for event_dir in _event_dirs(run_dir):
        dir_scalars, dir_hparams = _read_events(event_dir)
        for tag, points in dir_scalars.items():
            scalars.setdefault(tag, []).extend(points)
        tb_hparams.update(dir_hparams)
    for points in scalars.values():
        points.sort(key=lambda point: (point.step, point.wall_time))
    return Run(path=run_dir, name=run_dir.relative_to(root).as_posix(),
               hparams=_config_hparams(run_dir) or tb_hparams, scalars=scalars)


def load_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """Every run under ``paths``, named relative to the common root of their exp_manager directories."""
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise NoRunsError(paths)
    root = Path(os.path.commonpath([run_dir.parent.parent for run_dir in run_dirs]))
    return [load_run(run_dir, root) for run_dir in run_dirs]


# --- the table ----------------------------------------------------------------------------------


def differing_hparams(runs: Sequence[Run]) -> list[str]:
    """Hyperparameter keys with two different values among the runs that have them, in
    first-seen order. A key only one task has (``num_classes``) is no difference between
    a classification and an NER run: the task column already says so."""
    keys = dict.fromkeys(key for run in runs for key in run.hparams)
    return [key for key in keys if len({run.hparams[key] for run in runs if key in run.hparams}) > 1]


def comparison_table(runs: Sequence[Run], metric: str | None = None) -> pd.DataFrame:
    """One row per run; ``metric`` overrides each task's main validation metric."""
    shown_elsewhere = {"task", "encoder.name"}
    hparam_columns = [key for key in differing_hparams(runs) if key not in shown_elsewhere]
    test_columns = list(dict.fromkeys(tag for run in runs if run.task in TASK_METRICS
                                      for tag in TASK_METRICS[run.task].test))
    rows = []
    for run in runs:
        val_metric = metric or run.main_metric
        row = {"run": run.name, "task": run.task, "encoder": run.encoder}
        row.update({key: run.hparams.get(key) for key in hparam_columns})
        row.update({
            "val metric": val_metric,
            "best val": run.best(val_metric) if val_metric else None,
            "final val": run.final(val_metric) if val_metric else None,
        })
        row.update({tag: run.test_value(tag) for tag in test_columns})
        row.update({"steps": run.steps, "wall [s]": run.wall_time, "steps/s": run.steps_per_second,
                    "samples/s": run.samples_per_second})
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table with blank cells for missing values."""
    # Object columns of None: tabulate leaves None cells blank, but prints NaN as "nan".
    cells = table.astype(object).where(table.notna(), None)
    coarse = {"wall [s]", "steps/s", "samples/s"}
    float_formats = [".1f" if column in coarse else ".4g" for column in table.columns]
    return cells.to_markdown(index=False, floatfmt=float_formats, missingval="")


# --- the plot -----------------------------------------------------------------------------------


def default_scalars(runs: Sequence[Run], metric: str | None = None) -> list[str]:
    """``train_loss`` and the validation metric(s) of the table."""
    val_metrics = [metric] if metric else [run.main_metric for run in runs if run.main_metric]
    return list(dict.fromkeys([TRAIN_LOSS, *val_metrics]))


def plot_scalars(runs: Sequence[Run], scalars: Sequence[str], path: str | os.PathLike) -> Path:
    """A PNG with one subplot per scalar, every run on it against the step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5 * len(scalars) + 2.5, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(scalars), squeeze=False)[0]
    legend: dict[str, object] = {}
    for ax, tag in zip(axes, scalars):
        for index, run in enumerate(runs):
            points = run.scalars.get(tag)
            if not points:
                continue
            # Per-epoch validation scalars are a handful of points: markers show where they were taken.
            (line,) = ax.plot([p.step for p in points], [p.value for p in points], color=f"C{index % 10}",
                              marker="o" if len(points) <= 30 else None, markersize=3, label=run.name)
            legend.setdefault(run.name, line)
        if not ax.has_data():
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=tag, xlabel="step")
        ax.grid(alpha=0.3)
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="outside right upper", fontsize="small")
    path = Path(path)
    with atomic_write(path, mode="wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path


# --- everything at once -------------------------------------------------------------------------


@dataclass
class Comparison:
    table: pd.DataFrame
    markdown: str
    written: list[Path]


def compare(paths: Sequence[str | os.PathLike], metric: str | None = None, scalars: Sequence[str] | None = None,
            csv_path: str | os.PathLike | None = None, markdown_path: str | os.PathLike | None = None,
            plot_path: str | os.PathLike | None = None) -> Comparison:
    """Load the runs under ``paths``; write the table (CSV, Markdown) and the plot (default
    ``<first path>/comparison.png``). Raises :class:`NoRunsError`."""
    runs = load_runs(paths)
    table = comparison_table(runs, metric)
    markdown = to_markdown(table)
    written = []
    if csv_path is not None:
        with atomic_write(csv_path) as handle:
            table.to_csv(handle, index=False, float_format="%.6g")  # TensorBoard stores float32: drop its noise
        written.append(Path(csv_path))
    if markdown_path is not None:
        with atomic_write(markdown_path) as handle:
            handle.write(markdown + "\n")
        written.append(Path(markdown_path))
    plot_path = plot_path if plot_path is not None else Path(paths[0]) / "comparison.png"
    written.append(plot_scalars(runs, scalars or default_scalars(runs, metric), plot_path))
    return Comparison(table=table, markdown=markdown, written=written)
