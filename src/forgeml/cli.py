"""The `forgeml` command: parse, call the Python API, print.

Every command calls the same functions as the Python API (forgeml.pipeline, forgeml.registry).
User errors print one line on stderr and exit 2; progress goes to stderr so that stdout stays
clean for `--json` and CSV output. Heavy libraries are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="forgeml",
    help="From raw data to a trained, evaluated, versioned model: train, predict, evaluate, profile, manage models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(help="List, inspect and alias registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if value != value else f"{value:.{digits}f}"
    return str(value)


def _json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------- train


class _Progress:
    """Renders pipeline events as a Rich progress display on stderr."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = None if quiet else Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err, transient=True)
        self.task_id = None

    def __enter__(self) -> _Progress:
        if self.progress:
            self.progress.start()
            self.task_id = self.progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.stop()

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        if not self.progress:
            return
        if event == "stage":
            total = payload.get("count")
            self.progress.update(self.task_id, description=payload["name"], total=total,
                                 completed=0 if total else None)
        elif event == "candidate_start":
            self.family = payload["family"]
            self.progress.update(self.task_id, description=f"fitting {self.family}")
        elif event in ("epoch", "batch"):  # a neural family's trainer
            loss = payload.get("val_loss", payload.get("train_loss", payload.get("loss")))
            eta = payload.get("eta_s")
            detail = f"epoch {payload['epoch']}/{payload['epochs']}"
            detail += f", loss {loss:.4f}" if isinstance(loss, float) else ""
            detail += f", metric {payload['val_metric']:.4f}" if isinstance(payload.get("val_metric"), float) else ""
            detail += f", ETA {eta:.0f}s" if isinstance(eta, (int, float)) else ""
            self.progress.update(self.task_id, description=f"fitting {getattr(self, 'family', 'model')}: {detail}")
        elif event == "candidate":
            self.progress.advance(self.task_id)
            if payload["status"] != "ok":
                err.print(f"  {payload['family']}: {payload['status']} ({payload['note']})", style="dim")


def _print_result(result: Any) -> None:
    from rich.table import Table

    board = Table(title=f"Leaderboard ({result.metric}, {'higher' if _greater(result.metric) else 'lower'} is better)")
    for col in ("rank", "model", result.metric, "std", "fit time (s)", "predict (ms/row)", "status"):
        board.add_column(col, justify="right" if col not in ("model", "status") else "left")
    for row in result.leaderboard.to_dict(orient="records"):
        style = "bold green" if row["rank"] == 1 else None
        board.add_row(_fmt(row["rank"], 0),
                      row["family"] if row.get("config", "default") == "default" else f"{row['family']} ({row['config']})",
                      _fmt(row[result.metric]), _fmt(row["std"]), _fmt(row["fit_time"], 2),
                      _fmt(None if row.get("predict_time_per_row") is None else 1000 * row["predict_time_per_row"], 4),
                      row["status"] if not row["note"] else f"{row['status']}: {row['note']}", style=style)
    out.print(board)
    scores = Table(title="Scores of the final model")
    scores.add_column("metric")
    splits = [s for s in ("train", "validation", "test") if s in result.evaluation]
    for split in splits:
        cv = split == "validation" and result.evaluation[split].get("note")
        scores.add_column("validation (out-of-fold)" if cv else split, justify="right")
    names = list(result.evaluation[splits[-1]]["metrics"])
    for name in names:
        scores.add_row(name, *(_fmt(result.evaluation[s]["metrics"].get(name)) for s in splits))
    out.print(scores)
    if result.diagnosis:
        out.print(f"Diagnosis: [bold]{result.diagnosis.get('verdict')}[/bold]: {result.diagnosis.get('message', '')}")
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    if result.version is not None:
        out.print(f"Registered [bold]{result.name}/{result.version}[/bold] (run {result.run_id}) in {result.elapsed:.1f}s")
    if result.report_path:
        out.print(f"Report: {result.report_path}")


def _greater(metric: str) -> bool:
    from forgeml.evaluation.metrics import get_metric

    return get_metric(metric).greater_is_better


@app.command()
def train(
    data: Optional[str] = typer.Argument(None, help="data file, SQLAlchemy URL or sklearn://NAME (or data.source in --spec)"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="column to predict"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="seconds for the whole run (default 60)"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="registered model name"),
    spec: Optional[Path] = typer.Option(None, "--spec", "-s", help="YAML spec (flags override it)"),
    task: Optional[str] = typer.Option(None, "--task", help="classification | regression | auto"),
    metric: Optional[str] = typer.Option(None, "--metric", help="metric to optimise"),
    models: Optional[str] = typer.Option(None, "--models", help="'auto' or comma-separated families"),
    preset: Optional[str] = typer.Option(None, "--preset", help="models: auto: fast | balanced | best"),
    seed: Optional[int] = typer.Option(None, "--seed", help="one seed for everything"),
    query: Optional[str] = typer.Option(None, "--query", help="SQL query when DATA is a database URL"),
    ignore: Optional[list[str]] = typer.Option(None, "--ignore", help="column to leave out (repeatable)"),
    id_column: Optional[list[str]] = typer.Option(None, "--id-column", help="identifier column (repeatable)"),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="keep rows of a group in one split"),
    time_column: Optional[str] = typer.Option(None, "--time-column", help="split in time order"),
    sequence_id: Optional[str] = typer.Option(None, "--sequence-id", help="a long table: the column naming each sequence"),
    sequence_time: Optional[str] = typer.Option(None, "--sequence-time", help="a long table: the column ordering steps"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="neural families: maximum epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="neural families: batch size"),
    device: Optional[str] = typer.Option(None, "--device", help="neural families: auto | cpu | cuda | cuda:N | mps"),
    workers: Optional[int] = typer.Option(None, "--workers", help="neural families: data-parallel processes (DDP)"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue the interrupted job with this id"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
) -> None:
    """Train, evaluate and register a model on a table (--resume JOB continues an interrupted run)."""
    from forgeml.pipeline import train as run_train

    with _Progress(quiet or as_json) as progress:
        result = run_train(
            data, spec=str(spec) if spec else None, on_event=progress, target=target, time_limit=time_limit,
            name=name, task=task, metric=metric, models=models, preset=preset, seed=seed, query=query,
            ignore_columns=ignore or None,
            id_columns=id_column or None, group_column=group_column, time_column=time_column,
            sequence_id=sequence_id, sequence_time=sequence_time, epochs=epochs, batch_size=batch_size, device=device, workers=workers, resume=resume,
        )
    if as_json:
        _json({"name": result.name, "version": result.version, "run_id": result.run_id,
               "family": result.model.family, "metric": result.metric, "metrics": result.metrics,
               "evaluation": {k: v.get("metrics") for k, v in result.evaluation.items()},
               "diagnosis": result.diagnosis,
               "leaderboard": json.loads(result.leaderboard.to_json(orient="records")),
               "report": str(result.report_path) if result.report_path else None,
               "elapsed": round(result.elapsed, 3), "fit_seconds": round(result.fit_seconds, 3),
               "warnings": result.warnings})
    else:
        _print_result(result)


# ----------------------------------------------------------------------------- use models


@app.command()
def predict(
    model: str = typer.Argument(..., help="NAME, NAME@latest, NAME@ALIAS or NAME/VERSION"),
    data: str = typer.Argument(..., help="rows to score (any supported format)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here (csv, parquet, jsonl); default stdout CSV"),
    proba: bool = typer.Option(False, "--proba", help="add one proba_<class> column per class"),
    keep_columns: bool = typer.Option(False, "--keep-columns", help="copy the input columns into the output"),
) -> None:
    """Score new rows with a registered model."""
    from forgeml.data.io import read_table, write_table
    from forgeml.pipeline import load
    from forgeml.pipeline import predict as run_predict

    loaded = load(model)
    frame = read_table(data)
    preds = run_predict(loaded, frame, proba=proba)
    if keep_columns:
        preds = frame.join(preds, rsuffix="_predicted")
    if output is None:
        preds.to_csv(sys.stdout, index=False)
        return
    write_table(preds, output)
    err.print(f"Wrote {len(preds)} predictions of {loaded.name}/{loaded.version} to {output}")


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="NAME, NAME@latest, NAME@ALIAS or NAME/VERSION"),
    data: str = typer.Argument(..., help="labelled rows (must hold the model's target column)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON on stdout"),
) -> None:
    """Score a registered model on labelled data."""
    from rich.table import Table

    from forgeml.pipeline import evaluate as run_evaluate

    result = run_evaluate(model, data)
    if as_json:
        _json(result)
        return
    table = Table(title=f"{result['model']['name']}/{result['model']['version']} on {data} ({result['rows']} rows)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        table.add_row(name, _fmt(value))
    out.print(table)
    matrix = result.get("confusion_matrix")
    if matrix:
        cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
        cm.add_column("")
        for label in matrix["labels"]:
            cm.add_column(str(label), justify="right")
        for label, row in zip(matrix["labels"], matrix["matrix"]):
            cm.add_row(str(label), *(str(v) for v in row))
        out.print(cm)


@app.command()
def profile(
    data: str = typer.Argument(..., help="data file, SQLAlchemy URL or sklearn://NAME"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="target column (adds balance and leakage checks)"),
    query: Optional[str] = typer.Option(None, "--query", help="SQL query when DATA is a database URL"),
    as_json: bool = typer.Option(False, "--json", help="print JSON on stdout"),
) -> None:
    """Profile a table: column kinds, missing values, duplicates, balance, leakage."""
    from rich.table import Table

    from forgeml.data.io import read_table
    from forgeml.pipeline import profile as run_profile

    prof = run_profile(read_table(data, query=query), target=target)
    summary = prof.to_dict()
    if as_json:
        _json(summary)
        return
    table = Table(title=f"{data}: {summary['rows']} rows x {summary['columns']} columns")
    table.add_column("column")
    table.add_column("kind")
    table.add_column("missing", justify="right")
    for column, kind in summary["kinds"].items():
        table.add_row(column, kind, f"{summary['missing'].get(column, 0.0):.1%}")
    out.print(table)
    if summary.get("class_balance"):
        out.print("Class balance: " + ", ".join(f"{k}: {v:.1%}" for k, v in summary["class_balance"].items()))
    for warning in summary.get("warnings", []):
        out.print(f"[yellow]warning:[/yellow] {warning}")


# ----------------------------------------------------------------------------- registry


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="print JSON on stdout")) -> None:
    """Registered models with their latest version and aliases."""
    from rich.table import Table

    from forgeml.registry.store import Store

    rows = Store().list_models()
    if as_json:
        _json(rows)
        return
    if not rows:
        out.print("No models registered yet; train one with `forgeml train DATA --target COLUMN --name NAME`.")
        return
    table = Table(title="Registered models")
    for col in ("name", "latest", "aliases", "updated"):
        table.add_column(col)
    for row in rows:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(row.get("aliases", {}).items()))
        table.add_row(row["name"], str(row.get("latest_version")), aliases or "-", str(row.get("updated", ""))[:19])
    out.print(table)


@models_app.command("show")
def models_show(
    name: str = typer.Argument(..., help="model name, or a ref such as NAME/3 for one version"),
    as_json: bool = typer.Option(False, "--json", help="print JSON on stdout"),
) -> None:
    """Versions of a model with their lineage (run, data hash, metrics)."""
    from rich.table import Table

    from forgeml.registry.store import Store

    store = Store()
    info = store.resolve(name)  # validates the name, with suggestions
    versions = store.versions(info.name) if "/" not in name and "@" not in name else [info]
    rows = []
    for v in versions:
        run = store.get_run(v.run_id) if v.run_id else {}
        params, metrics = run.get("params", {}), run.get("metrics", {})
        rows.append({"version": v.version, "aliases": list(v.aliases), "created": str(v.created)[:19],
                     "family": params.get("family"), "metric": params.get("metric"),
                     "test_score": metrics.get(f"test_{params.get('metric')}"), "data_hash": params.get("data.hash"),
                     "data_source": params.get("data.source"), "run_id": v.run_id, "description": v.description})
    if as_json:
        _json(rows)
        return
    table = Table(title=f"{info.name}")
    for col in ("version", "aliases", "created", "family", "test score", "data", "run"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["version"]), ", ".join(r["aliases"]) or "-", r["created"], str(r["family"]),
                      f"{r['metric']}={_fmt(r['test_score'])}", f"{r['data_source']} ({str(r['data_hash'])[:12]})",
                      str(r["run_id"])[:12])
    out.print(table)


@models_app.command("alias")
def models_alias(
    name: str = typer.Argument(..., help="model name"),
    version: int = typer.Argument(..., help="version number"),
    alias: str = typer.Argument(..., help="alias to point at that version, e.g. production"),
) -> None:
    """Point an alias (e.g. production) at a version: `forgeml models alias churn 3 production`."""
    from forgeml.registry.store import Store

    Store().set_alias(name, version, alias)
    out.print(f"{name}@{alias} → version {version}")


# ----------------------------------------------------------------------------- the rest


@app.command()
def init() -> None:
    """Print a commented spec with every default: `forgeml init > spec.yaml`."""
    from forgeml.spec import init_template

    sys.stdout.write(init_template())


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind"),
    port: int = typer.Option(5000, "--port", help="port"),
) -> None:
    """Open MLflow's UI on the forgeml store."""
    import os

    from forgeml.registry.store import Store

    store = Store()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store.tracking_uri, "--host", host, "--port", str(port)]
    if store.home is not None:
        cmd += ["--default-artifact-root", str(store.artifact_location)]
    err.print(f"MLflow UI on http://{host}:{port} for {store.tracking_uri} (Ctrl-C to stop)")
    os.execv(sys.executable, cmd)


# ----------------------------------------------------------------------------- tune


@app.command()
def tune(
    data: Optional[str] = typer.Argument(None, help="data file, SQLAlchemy URL or sklearn://NAME (or data.source in --spec)"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="column to predict"),
    models: Optional[str] = typer.Option(None, "--model", "-m", help="the family to tune, e.g. lightgbm"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="tpe | random | grid (default tpe)"),
    pruner: Optional[str] = typer.Option(None, "--pruner", help="median | hyperband | none (default median)"),
    trials: Optional[int] = typer.Option(None, "--trials", help="finished trials the study aims for (default 50)"),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="seconds for the search (default 60)"),
    tuning_workers: Optional[int] = typer.Option(None, "--workers", help="processes running trials on this machine"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="registered model name"),
    study: Optional[str] = typer.Option(None, "--study", help="study name (default NAME-FAMILY)"),
    spec: Optional[Path] = typer.Option(None, "--spec", "-s", help="YAML spec (flags override it)"),
    task: Optional[str] = typer.Option(None, "--task", help="classification | regression | auto"),
    metric: Optional[str] = typer.Option(None, "--metric", help="metric to optimise"),
    seed: Optional[int] = typer.Option(None, "--seed", help="one seed for everything"),
    join: bool = typer.Option(False, "--join", help="only run trials of the study; the process that started it registers"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
) -> None:
    """Search a family's hyperparameters (Optuna), refit the best, evaluate and register it.

    Run the same command on more machines with one FORGEML_TRACKING_URI and --join to add workers.
    """
    from forgeml.tuning.tune import tune as run_tune

    with _Progress(quiet or as_json) as progress:
        result = run_tune(
            data, spec=str(spec) if spec else None, join=join, on_event=progress, target=target, models=models,
            sampler=sampler, pruner=pruner, trials=trials, time_limit=time_limit, tuning_workers=tuning_workers,
            name=name, study=study, task=task, metric=metric, seed=seed,
        )
    board = result.leaderboard
    summary = {"study": result.study, "storage": result.storage, "metric": result.metric,
               "trials": {s: int((board["status"] == s).sum()) for s in ("ok", "pruned", "failed")},
               "trials_run": result.trials_run, "best_trial": result.best_trial, "best_params": result.best_params}
    if join:
        if as_json:
            _json({**summary, "best_value": result.best_value})
        else:
            _print_trials(result.leaderboard, result.metric, summary)
        return
    if as_json:
        _json({**summary, "name": result.name, "version": result.version, "run_id": result.run_id,
               "family": result.model.family, "metrics": result.metrics,
               "evaluation": {k: v.get("metrics") for k, v in result.evaluation.items()},
               "leaderboard": json.loads(board.head(20).to_json(orient="records")),
               "report": str(result.report_path) if result.report_path else None,
               "elapsed": round(result.elapsed, 3), "warnings": result.warnings})
        return
    _print_trials(board, result.metric, summary)
    scores = {s: result.evaluation[s]["metrics"].get(result.metric) for s in ("validation", "test") if s in result.evaluation}
    out.print(f"Best trial {result.best_trial}: " + ", ".join(f"{s} {result.metric} {_fmt(v)}" for s, v in scores.items()))
    if result.version is not None:
        out.print(f"Registered [bold]{result.name}/{result.version}[/bold] (run {result.run_id}) in {result.elapsed:.1f}s")
    if result.report_path:
        out.print(f"Report: {result.report_path}")


def _print_trials(board: Any, metric: str, summary: dict[str, Any], top: int = 10) -> None:
    from rich.table import Table

    counts = summary["trials"]
    table = Table(title=f"Study {summary['study']}: {counts['ok']} complete, {counts['pruned']} pruned, "
                        f"{counts['failed']} failed ({metric}, {'higher' if _greater(metric) else 'lower'} is better)")
    for col in ("rank", "trial", metric, "std", "fit time (s)", "status", "parameters"):
        table.add_column(col, justify="left" if col in ("status", "parameters") else "right")
    for row in board.head(top).to_dict(orient="records"):
        table.add_row(_fmt(row["rank"], 0), str(row["trial"]), _fmt(row[metric]), _fmt(row["std"]),
                      _fmt(row["fit_time"], 2), row["status"], row["note"], style="bold green" if row["rank"] == 1 else None)
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; user errors become one line on stderr and exit code 2."""
    try:  # Typer >= 0.22 vendors click; its usage errors live there
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - older Typer
        from click import exceptions as click_errors
    from rich.markup import escape

    from forgeml.errors import ForgeError

    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="forgeml", standalone_mode=False)
    except ForgeError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except click_errors.NoArgsIsHelpError as exc:
        err.print(exc.ctx.get_help() if exc.ctx else str(exc), markup=False)
        return 0
    except click_errors.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        err.print(f"error: {exc.format_message()}{where}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except click_errors.ClickException as exc:
        err.print(f"error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted", markup=False)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
