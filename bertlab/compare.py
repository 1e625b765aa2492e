"""Compare training runs: a table of hyperparameters, metrics and throughput, and a plot of their curves.

A run is an exp_manager directory ``<exp_dir>/<name>/<version>/``: TensorBoard events,
``config.yaml`` (the composed config) and whatever else the run left there. TensorBoard is
imported inside :func:`load_run` and matplotlib inside :func:`plot_scalars`.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from bertlab.io import UserError, atomic_write
from bertlab.tasks import TASK_SPECS

EVENTS_GLOB = "events.out.tfevents.*"
TRAIN_LOSS = "train_loss"
SEED = "seed"
ERRORS = "errors"  # the run table's link to each run's error analysis
HParam = int | float | str | bool


class NoRunsError(UserError, FileNotFoundError):
    """No TensorBoard event files under the given paths (or none that the filter kept)."""

    def __init__(self, paths: Sequence[str | os.PathLike], qualifier: str = ""):
        listed = ", ".join(f"{p}" if Path(p).exists() else f"{p} (does not exist)" for p in paths) or "(no paths)"
        qualifier = f" {qualifier}" if qualifier else ""
        super().__init__(f"no runs (directories with {EVENTS_GLOB} files){qualifier} under: {listed}")


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
    experiment: str = ""   # exp_manager.name: the first part of ``name``

    @property
    def seed_group(self) -> tuple:
        """Runs with equal keys differ at most by their seed: one experiment, one recipe."""
        return self.experiment, tuple(sorted((k, str(v)) for k, v in self.hparams.items() if k != SEED))

    @property
    def error_analysis(self) -> Path | None:
        """The test's error analysis the run wrote (errors.tsv, confusion_matrix.png), if any."""
        spec = TASK_SPECS.get(self.task or "")
        path = self.path / spec.error_analysis if spec else None
        return path if path is not None and path.is_file() else None

    @property
    def task(self) -> str | None:
        task = self.hparams.get("task")
        if task is None:  # no config.yaml nor hparams entry: recognise the task by its validation metric
            task = next((name for name, spec in TASK_SPECS.items() if spec.monitor in self.scalars), None)
        return task

    @property
    def encoder(self) -> str | None:
        return self.hparams.get("encoder.name")

    @property
    def main_metric(self) -> str | None:
        spec = TASK_SPECS.get(self.task)
        return spec.monitor if spec else None

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
    name = run_dir.relative_to(root).as_posix()
    return Run(path=run_dir, name=name, hparams=_config_hparams(run_dir) or tb_hparams, scalars=scalars,
               experiment=name.split("/")[0])


def load_runs(paths: Sequence[str | os.PathLike], experiment: str | None = None) -> list[Run]:
    """Every run under ``paths``, named relative to the root of their exp_manager directories
    (``<name>/<version>``; a multirun job's version is ``<sweep>/<job>``). ``experiment``: only
    runs whose experiment name matches this shell pattern."""
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise NoRunsError(paths)
    root = Path(os.path.commonpath([_exp_root(run_dir) for run_dir in run_dirs]))
    runs = [load_run(run_dir, root) for run_dir in run_dirs]
    if experiment is not None:
        runs = [run for run in runs if fnmatch.fnmatchcase(run.experiment, experiment)]
        if not runs:
            raise NoRunsError(paths, f"with an experiment name matching {experiment!r}")
    return runs


def _exp_root(run_dir: Path) -> Path:
    """``<exp_dir>`` of ``<exp_dir>/<name>/<version...>``: above the nearest directory named as the
    run's experiment (its config.yaml says), else two levels up."""
    from omegaconf import OmegaConf

    config = run_dir / "config.yaml"
    name = OmegaConf.select(OmegaConf.load(config), "exp_manager.name") if config.is_file() else None
    return next((parent.parent for parent in run_dir.parents if name and parent.name == name),
                run_dir.parent.parent)


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
    test_columns = list(dict.fromkeys(tag for run in runs if run.task in TASK_SPECS
                                      for tag in TASK_SPECS[run.task].test_metrics))
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
                    "samples/s": run.samples_per_second, ERRORS: run.error_analysis})
        rows.append(row)
    return pd.DataFrame(rows)


# Columns of the run table that are measurements (averaged over seeds), not settings.
MEASURED = ("best val", "final val", "steps", "wall [s]", "steps/s", "samples/s")
BEST_MARK = "*"


def seed_groups(runs: Sequence[Run]) -> list[list[Run]]:
    """Runs that differ only by their seed, in first-seen order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.seed_group, []).append(run)
    return list(groups.values())


def group_table(runs: Sequence[Run], metric: str | None = None) -> pd.DataFrame:
    """One row per seed group: the settings, ``n`` and the seeds, and mean and sample std of
    every measured column (std blank for n=1). ``best`` marks, per task, the group with the
    highest mean best-validation score: chosen on dev, never on test."""
    table = comparison_table(runs, metric)
    group_of_run = {id(run): index for index, group in enumerate(seed_groups(runs)) for run in group}
    table["_group"] = [group_of_run[id(run)] for run in runs]
    measured = [c for c in table.columns if c in MEASURED or c.startswith("test_")]
    settings = [c for c in table.columns if c not in measured and c not in ("run", "_group", SEED, ERRORS)]
    rows = []
    for _, group in table.groupby("_group", sort=True):
        row = {"experiment": runs[group.index[0]].experiment, **group.iloc[0][settings].to_dict(),
               "n": len(group), "seeds": ",".join(str(runs[i].hparams.get(SEED, "?")) for i in group.index)}
        for column in measured:
            values = pd.to_numeric(group[column], errors="coerce").dropna()
            row[f"{column} mean"] = values.mean() if len(values) else None
            row[f"{column} std"] = values.std(ddof=1) if len(values) > 1 else None
        rows.append(row)
    groups = pd.DataFrame(rows)
    groups.insert(0, "best", "")
    if "best val mean" in groups:
        scores = pd.to_numeric(groups["best val mean"], errors="coerce")
        for _, task_rows in scores.groupby(groups["task"]):
            if task_rows.notna().any():
                groups.loc[task_rows.idxmax(), "best"] = BEST_MARK
    return groups


class NoSuchColumnError(UserError, ValueError):
    """``--sort`` names a column the tables do not have."""


def sort_table(table: pd.DataFrame, column: str | None, ascending: bool = False) -> pd.DataFrame:
    """Sorted by any column (blank cells last); :class:`NoSuchColumnError` naming the columns there are."""
    if column is None:
        return table
    if column not in table.columns:
        raise NoSuchColumnError(f"no column {column!r} to sort by; columns: {', '.join(map(str, table.columns))}")
    return table.sort_values(column, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


def groups_to_markdown(groups: pd.DataFrame) -> str:
    """Each measured column as one ``mean ± std`` cell."""
    cells = groups[[c for c in groups.columns if not (c.endswith(" mean") or c.endswith(" std"))]].copy()
    for column in [c[: -len(" mean")] for c in groups.columns if c.endswith(" mean")]:
        digits = 1 if column in ("wall [s]", "steps/s", "samples/s", "steps") else 4
        cells[column] = [
            "" if pd.isna(mean) else f"{mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")
            for mean, std in zip(groups[f"{column} mean"], groups[f"{column} std"])]
    return to_markdown(cells)


def linked(table: pd.DataFrame, base: Path) -> pd.DataFrame:
    """The run table with each error-analysis path as a Markdown link relative to ``base``
    (the directory of the Markdown file)."""
    table = table.copy()
    table[ERRORS] = [f"[{path.name}]({Path(os.path.relpath(path.resolve(), base)).as_posix()})"
                     if isinstance(path, Path) else None for path in table[ERRORS]]
    return table


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
    """A PNG with one subplot per scalar against the step: one line per seed group, its mean
    over the seeds with a band of +- one standard deviation (a single run: its own line)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5 * len(scalars) + 2.5, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(scalars), squeeze=False)[0]
    legend: dict[str, object] = {}
    for ax, tag in zip(axes, scalars):
        for index, group in enumerate(seed_groups(runs)):
            series = {run.name: pd.Series({p.step: p.value for p in run.scalars[tag]})
                      for run in group if run.scalars.get(tag)}
            if not series:
                continue
            curves = pd.concat(series, axis=1)
            label = group[0].name if len(group) == 1 else f"{group[0].name} (mean of {len(group)} seeds)"
            # Seeds of one recipe log at the same steps; a step some runs lack is left out of the mean.
            curves = curves.dropna() if len(group) > 1 else curves
            mean, color = curves.mean(axis=1), f"C{index % 10}"
            # Per-epoch validation scalars are a handful of points: markers show where they were taken.
            (line,) = ax.plot(mean.index, mean.values, color=color, marker="o" if len(mean) <= 30 else None,
                              markersize=3, label=label)
            if curves.shape[1] > 1:
                std = curves.std(axis=1, ddof=1)
                ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            legend.setdefault(label, line)
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
    table: pd.DataFrame    # one row per run
    groups: pd.DataFrame   # one row per seed group
    markdown: str
    written: list[Path]


def compare(paths: Sequence[str | os.PathLike], metric: str | None = None, scalars: Sequence[str] | None = None,
            csv_path: str | os.PathLike | None = None, markdown_path: str | os.PathLike | None = None,
            plot_path: str | os.PathLike | None = None, experiment: str | None = None, sort: str | None = None,
            ascending: bool = False) -> Comparison:
    """Load the runs under ``paths`` (``experiment``: a name pattern); write the run table and
    the seed-group table (CSV: ``<csv>`` and ``<csv stem>.groups.csv``; Markdown: both tables)
    and the plot (default ``<first path>/comparison.png``). ``sort`` orders both tables by
    that column where they have it. Raises :class:`NoRunsError`, and :class:`NoSuchColumnError`
    for an unknown sort column."""
    runs = load_runs(paths, experiment=experiment)
    table, groups = comparison_table(runs, metric), group_table(runs, metric)
    if sort is not None and sort not in table.columns and f"{sort} mean" not in groups.columns:
        sort_table(table, sort)  # raises, naming the columns
    table = sort_table(table, sort if sort in table.columns else None, ascending)
    group_sort = f"{sort} mean" if sort is not None and f"{sort} mean" in groups.columns else sort
    groups = sort_table(groups, group_sort if group_sort in groups.columns else None, ascending)
    base = Path(markdown_path).resolve().parent if markdown_path is not None else Path.cwd()
    markdown = "\n".join([f"Runs ({len(table)})", "", to_markdown(linked(table, base)), "",
                          f"Seed groups ({len(groups)}; mean ± sample std over seeds; "
                          f"{BEST_MARK} best mean dev score per task)", "", groups_to_markdown(groups)])
    written = []
    if csv_path is not None:
        csv_path = Path(csv_path)
        groups_csv = csv_path.with_name(f"{csv_path.stem}.groups.csv")
        for frame, target in ((table, csv_path), (groups, groups_csv)):
            with atomic_write(target) as handle:
                frame.to_csv(handle, index=False, float_format="%.6g")  # TensorBoard stores float32: drop its noise
            written.append(target)
    if markdown_path is not None:
        with atomic_write(markdown_path) as handle:
            handle.write(markdown + "\n")
        written.append(Path(markdown_path))
    plot_path = plot_path if plot_path is not None else Path(paths[0]) / "comparison.png"
    written.append(plot_scalars(runs, scalars or default_scalars(runs, metric), plot_path))
    return Comparison(table=table, groups=groups, markdown=markdown, written=written)
