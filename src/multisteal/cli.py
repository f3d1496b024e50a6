"""The ``multisteal`` command line."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from multisteal import __version__
from multisteal.errors import MultistealError

if TYPE_CHECKING:
    from multisteal.experiments import AuditConfig, AuditResult

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Steal a classifier through its query API and audit the Rashomon set of its surrogates.",
)
console = Console(stderr=True)

BAD_INT_LIST = "{option} must be comma-separated whole numbers, got {value!r}."
BAD_FLOAT_LIST = "{option} must be comma-separated numbers, got {value!r}."
PARTIAL_KEPT = "Results of the finished budgets ({budgets}) are kept in {out}."
NEW_STORE = (
    "Note: there was no store at {path}; a new one was created. A service uses it only when "
    "started with --db {db} (by default it uses service.db beside the target)."
)
BAD_KEY_VALUE = "{option} must be key=value, got {value!r}."
BAD_SPLIT = "--split needs three sizes (target-train, pool, evaluation), got {value!r}."
SEEDS_AND_REPEATS = "Give --seeds or --repeats, not both."
OUT_IS_FILE = "--out {out} is a file, not a folder for a run."
OUT_NOT_EMPTY = (
    "--out {out} exists and is not empty; choose a new folder, give --resume to finish the run "
    "there, or --force to remove its contents first."
)
FORCE_AND_RESUME = "Give --resume or --force, not both."
OUT_NOT_WRITABLE = "Cannot write to --out {out}: {reason}."
OUT_IS_LINK = "--out {out} is a symbolic link; give the folder it points to."
NOT_A_RUN_FOLDER = (
    "--out {out} is not a multisteal run folder (no config.yaml or run.log in it): --force only "
    "replaces earlier runs. Choose a new folder."
)
RUN_MARKERS = ("config.yaml", "run.log")
INTERNAL_ERROR = "Internal error ({kind}: {detail}). The traceback is in {log}; please report it."
INTERRUPTED = "Interrupted (Ctrl-C)."
TERMINATED = "Terminated (SIGTERM)."
PARTIAL_NOTE = (
    "**Partial run** — it stopped early ({reason}). Finished and kept: {kept}; everything else "
    "of the configuration is missing, and the numbers below cover the finished part only. "
    "Finish it with the same command and --resume."
)
BAD_REPEATS = "--repeats must be >= 1, got {value}."


class CLIError(MultistealError):
    """A command-line argument is malformed."""


def _ints(option: str, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise CLIError(BAD_INT_LIST.format(option=option, value=value)) from None


def _floats(option: str, value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise CLIError(BAD_FLOAT_LIST.format(option=option, value=value)) from None


def _split(value: str) -> dict[str, float]:
    # Whole numbers written without a decimal point are row counts, the rest fractions.
    tokens = [v.strip() for v in value.split(",") if v.strip()]
    _floats("--split", value)  # the error for anything that is not a number
    if len(tokens) != 3:
        raise CLIError(BAD_SPLIT.format(value=value))
    sizes = [int(t) if t.lstrip("+").isdigit() else float(t) for t in tokens]
    return dict(zip(("target_train", "pool", "evaluation"), sizes, strict=True))


def _fail(message: str, *, code: int = 2) -> typer.Exit:
    console.print(
        f"[bold red]Error:[/bold red] {escape(message)}",
        highlight=False,
        markup=True,
        soft_wrap=True,
    )
    return typer.Exit(code=code)


DATA, TARGET, API, ATTACK, SURROGATE, EXPLORER, METRICS, RUN = (
    "Data",
    "Target",
    "API",
    "Attack",
    "Surrogate",
    "Explorer and ε-filter",
    "Metrics and baselines",
    "Run",
)


@app.command()
def audit(
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Bundled dataset: adult, compas, german_credit (tabular); breastmnist, "
            "pneumoniamnist (images); sst2, rotten_tomatoes (text). Default: adult.",
            rich_help_panel=DATA,
        ),
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Your own records as a CSV file.", rich_help_panel=DATA)
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            help="Your own images as an .npz file: x (n,H,W) or (n,H,W,C), y (n,), optional "
            "groups (n,).",
            rich_help_panel=DATA,
        ),
    ] = None,
    text_csv: Annotated[
        Path | None,
        typer.Option(
            help="Your own texts as a CSV file (with --text-column and --label).",
            rich_help_panel=DATA,
        ),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Text column of --text-csv.", rich_help_panel=DATA)
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="Label column of --csv or --text-csv.", rich_help_panel=DATA),
    ] = None,
    positive_label: Annotated[
        str | None,
        typer.Option(
            help="The favourable class (a label value) that fairness metrics treat as positive; "
            "default: the dataset's (for a CSV, the last label in sorted order).",
            rich_help_panel=DATA,
        ),
    ] = None,
    sensitive: Annotated[
        str | None,
        typer.Option(
            help="Sensitive columns of --csv or --text-csv, comma-separated.",
            rich_help_panel=DATA,
        ),
    ] = None,
    categorical: Annotated[
        str | None,
        typer.Option(
            help="Columns of --csv to treat as categorical, comma-separated (default: inferred "
            "from their values).",
            rich_help_panel=DATA,
        ),
    ] = None,
    numerical: Annotated[
        str | None,
        typer.Option(
            help="Columns of --csv to read as numbers although some values are not (those rows "
            "are dropped and reported), comma-separated.",
            rich_help_panel=DATA,
        ),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="Text encoding of --csv (e.g. latin-1).", rich_help_panel=DATA)
    ] = "utf-8",
    max_categories: Annotated[
        int,
        typer.Option(
            help="Most one-hot columns per categorical feature; rarer values are grouped as "
            "(other), and the summary says which columns were capped.",
            rich_help_panel=DATA,
        ),
    ] = 50,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with dataset files.", rich_help_panel=DATA)
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="target-train,pool,evaluation sizes (fractions or row counts). Default "
            "0.4,0.4,0.2 of all rows; with an official split (MedMNIST, SST-2) 0.5,0.5 of the "
            "official train part and all of its test part.",
            rich_help_panel=DATA,
        ),
    ] = None,
    official_split: Annotated[
        bool | None,
        typer.Option(
            "--official-split/--no-official-split",
            help="Use the dataset's official train/val/test split (default: when it has one).",
            rich_help_panel=DATA,
        ),
    ] = None,
    pool_dataset: Annotated[
        str | None,
        typer.Option(
            help="Another dataset as the attacker's pool (out of distribution, the Knockoff "
            "setting), e.g. pneumoniamnist for a breastmnist target, rotten_tomatoes for sst2.",
            rich_help_panel=DATA,
        ),
    ] = None,
    probe: Annotated[
        str,
        typer.Option(
            help="Bias probe scored by every member: auto (EEC for text), eec, none.",
            rich_help_panel=DATA,
        ),
    ] = "auto",
    target: Annotated[
        str | None,
        typer.Option(
            help="Target model: logistic, mlp, torch-logistic, gboost, forest, tree (tabular); "
            "cnn (images); "
            "tfidf-logistic, minilm-mlp (text). Default: mlp / cnn / tfidf-logistic.",
            rich_help_panel=TARGET,
        ),
    ] = None,
    load_target: Annotated[
        Path | None,
        typer.Option(
            help="Load a saved target artifact (trained on this data, split and seed).",
            rich_help_panel=TARGET,
        ),
    ] = None,
    target_url: Annotated[
        str | None,
        typer.Option(
            help="Audit a live prediction service (multisteal serve) at this URL instead of a "
            "local target; its /v1/info must show it was trained on this data, split and seed.",
            rich_help_panel=TARGET,
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the attacker's API key (with --target-url), or "
            "one key per budget, comma-separated in the order of the budgets.",
            rich_help_panel=TARGET,
        ),
    ] = None,
    auditor_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the auditor's API key, a second key added with "
            "multisteal keys add NAME --auditor (with --target-url).",
            rich_help_panel=TARGET,
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            help="API output: probabilities, top-k, label, rounded, leaf (a tree target's leaf "
            "ids, for path-finding).",
            rich_help_panel=API,
        ),
    ] = "probabilities",
    defence: Annotated[
        list[str] | None,
        typer.Option(
            help="Answer-side defence, repeatable, applied in the order given before the output "
            "policy: rounding:decimals=N, top-k:k=N, label-only, gaussian-noise:sigma=S, "
            "reverse-sigmoid:beta=B,gamma=G, high-confidence:cutoff=C, mad:epsilon=E[,"
            "keep_argmax=true].",
            rich_help_panel=API,
        ),
    ] = None,
    detect: Annotated[
        str,
        typer.Option(
            help="Query-stream detector: none or prada (Juuti et al. 2019); the results say "
            "after how many queries each attack was flagged.",
            rich_help_panel=API,
        ),
    ] = "none",
    detect_param: Annotated[
        list[str] | None,
        typer.Option(
            help="Detector parameter key=value, repeatable (prada: delta, min_distances).",
            rich_help_panel=API,
        ),
    ] = None,
    detect_refuse: Annotated[
        bool,
        typer.Option(
            help="Once the detector flags the stream, refuse every further query (the attack "
            "keeps what it got).",
            rich_help_panel=API,
        ),
    ] = False,
    top_k: Annotated[int, typer.Option(help="k of the top-k output.", rich_help_panel=API)] = 1,
    decimals: Annotated[
        int, typer.Option(help="Decimals of the rounded output.", rich_help_panel=API)
    ] = 2,
    attack: Annotated[
        str,
        typer.Option(
            help="Attack: pool, synthetic, marginals, equation-solving, path-finding, jacobian, "
            "knockoff-random, knockoff-adaptive, activethief, label-only-retraining "
            "(`multisteal attacks` lists them with what each needs).",
            rich_help_panel=ATTACK,
        ),
    ] = "pool",
    strategy: Annotated[
        str | None,
        typer.Option(
            help="ActiveThief's selection strategy: uncertainty, margin or k-center.",
            rich_help_panel=ATTACK,
        ),
    ] = None,
    query_batch: Annotated[
        int,
        typer.Option(
            help="The largest batch of inputs an attack sends in one request.",
            rich_help_panel=ATTACK,
        ),
    ] = 256,
    attack_param: Annotated[
        list[str] | None,
        typer.Option(
            help="Attack parameter key=value, repeatable (e.g. rounds=5).",
            rich_help_panel=ATTACK,
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help="Query budgets in inputs, comma-separated. Default 250,1000,4000 (BreastMNIST "
            "50,100,250 and PneumoniaMNIST 250,1000,2000: their pools are smaller).",
            rich_help_panel=ATTACK,
        ),
    ] = None,
    holdout: Annotated[
        float,
        typer.Option(help="Held-out share of the transcript.", rich_help_panel=ATTACK),
    ] = 0.2,
    surrogate: Annotated[
        str | None,
        typer.Option(
            help="Surrogate (a model family of the data's modality; logistic is the torch one). "
            "Default: mlp / cnn / minilm-mlp.",
            rich_help_panel=SURROGATE,
        ),
    ] = None,
    labels: Annotated[
        str, typer.Option(help="Surrogate labels: auto, hard, soft.", rich_help_panel=SURROGATE)
    ] = "auto",
    explorer: Annotated[
        str,
        typer.Option(
            help="Rashomon explorer: dropout, awp, retrain, ensemble, logistic-level-set, "
            "treefarms (`multisteal explorers` lists them).",
            rich_help_panel=EXPLORER,
        ),
    ] = "dropout",
    explorer_param: Annotated[
        list[str] | None,
        typer.Option(
            help="An explorer parameter as key=value (repeatable), e.g. --explorer-param "
            "n_members=50 for ensemble; dropout and retrain also have their own options.",
            rich_help_panel=EXPLORER,
        ),
    ] = None,
    epsilon: Annotated[
        str, typer.Option(help="ε values, comma-separated.", rich_help_panel=EXPLORER)
    ] = "0.005,0.01,0.02",
    criterion: Annotated[
        str,
        typer.Option(
            help="Rashomon criterion: transcript-loss (cross-entropy against the revealed "
            "probabilities on the held-out transcript; 0-1 when only labels are revealed), "
            "transcript (0-1), test-fidelity, test-loss.",
            rich_help_panel=EXPLORER,
        ),
    ] = "transcript-loss",
    selection_fraction: Annotated[
        float,
        typer.Option(
            help="Share of the evaluation rows set aside to select members under a test-* "
            "criterion (metrics use the rest).",
            rich_help_panel=EXPLORER,
        ),
    ] = 0.5,
    dropout_kind: Annotated[
        str, typer.Option(help="bernoulli or gaussian.", rich_help_panel=EXPLORER)
    ] = "bernoulli",
    dropout_semantics: Annotated[
        str, typer.Option(help="per-member or per-pass.", rich_help_panel=EXPLORER)
    ] = "per-member",
    dropout_layers: Annotated[
        str,
        typer.Option(
            help="Layers dropout perturbs: all, hidden (every Linear/Conv but the last), or auto "
            "(hidden when the surrogate has hidden layers, else all).",
            rich_help_panel=EXPLORER,
        ),
    ] = "auto",
    p_max: Annotated[
        float | None,
        typer.Option(help="Largest dropout rate of the grid.", rich_help_panel=EXPLORER),
    ] = None,
    n_rates: Annotated[
        int, typer.Option(help="Points of the dropout rate grid.", rich_help_panel=EXPLORER)
    ] = 21,
    rates: Annotated[
        str | None,
        typer.Option(
            help="Explicit dropout rates, comma-separated (overrides the grid).",
            rich_help_panel=EXPLORER,
        ),
    ] = None,
    members_per_rate: Annotated[
        int, typer.Option(help="Dropout members per rate.", rich_help_panel=EXPLORER)
    ] = 10,
    retrain_members: Annotated[
        int, typer.Option(help="Members of the retrain explorer.", rich_help_panel=EXPLORER)
    ] = 20,
    bootstrap: Annotated[
        bool, typer.Option(help="Retrain on bootstrap resamples.", rich_help_panel=EXPLORER)
    ] = False,
    fairness_method: Annotated[
        str,
        typer.Option(
            help="Per-member fairness: vectorised, or fairlearn (slow, identical).",
            rich_help_panel=METRICS,
        ),
    ] = "vectorised",
    capacity: Annotated[
        str,
        typer.Option(
            help="Rashomon Capacity: exact (converged; two classes from the extreme members) "
            "or reference (the published code's 1,000-step stop rule).",
            rich_help_panel=METRICS,
        ),
    ] = "exact",
    convergence_orders: Annotated[
        int,
        typer.Option(
            help="Random member orders behind each metric's convergence curve (0: none).",
            rich_help_panel=METRICS,
        ),
    ] = 20,
    chunk_mb: Annotated[
        float,
        typer.Option(
            help="Memory bound (MB) of one chunk of members handed from the explorer to the "
            "metrics.",
            rich_help_panel=METRICS,
        ),
    ] = 256.0,
    min_group_size: Annotated[
        int,
        typer.Option(
            help="Cells (groups; positives or negatives of a group for TPR/FPR/equalized odds) "
            "with fewer evaluation rows are left out of that fairness difference.",
            rich_help_panel=METRICS,
        ),
    ] = 20,
    fairness_bootstrap: Annotated[
        int,
        typer.Option(
            help="Bootstrap resamples of the evaluation rows for the target's fairness interval "
            "(0: none).",
            rich_help_panel=METRICS,
        ),
    ] = 1000,
    baseline_members: Annotated[
        int,
        typer.Option(
            help="Target copies retrained with other seeds (the owner's own Rashomon set; 0: off).",
            rich_help_panel=METRICS,
        ),
    ] = 5,
    explorer_floor: Annotated[
        bool,
        typer.Option(
            help="Run the explorer floor baseline (the explorer without budget-limited stealing).",
            rich_help_panel=METRICS,
        ),
    ] = True,
    seed: Annotated[
        int, typer.Option(help="Seed of a single-seed audit.", rich_help_panel=RUN)
    ] = 0,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Seeds to repeat the whole audit over, comma-separated (overrides --seed).",
            rich_help_panel=RUN,
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Repeat over seeds seed, seed+1, … (N of them).", rich_help_panel=RUN),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes for the seeds.", rich_help_panel=RUN)
    ] = 1,
    threads: Annotated[
        int, typer.Option(help="Torch threads (per worker).", rich_help_panel=RUN)
    ] = 2,
    out: Annotated[Path, typer.Option(help="Run directory to write.", rich_help_panel=RUN)] = Path(
        "runs/audit"
    ),
    force: Annotated[
        bool,
        typer.Option(
            help="Remove an existing, non-empty --out folder before running.", rich_help_panel=RUN
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Finish an interrupted run in --out (same configuration): its finished budgets "
            "and seeds are kept, only the missing work runs.",
            rich_help_panel=RUN,
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.", rich_help_panel=RUN)] = False,
) -> None:
    """Steal a target, explore the Rashomon set of its surrogates and write a run directory."""
    from multisteal.experiments import config_error_message, load_config

    started = time.perf_counter()
    try:
        if seeds is not None and repeats is not None:
            raise CLIError(SEEDS_AND_REPEATS)
        if repeats is not None and repeats < 1:
            raise CLIError(BAD_REPEATS.format(value=repeats))
        seed_list = (
            _ints("--seeds", seeds)
            if seeds is not None
            else list(range(seed, seed + repeats))
            if repeats is not None
            else None
        )
        raw: dict[str, Any] = {
            "dataset": dataset if (dataset or csv or images or text_csv) else "adult",
            "csv": csv,
            "images": images,
            "text_csv": text_csv,
            "text_column": text_column,
            "pool_dataset": pool_dataset,
            "probe": probe,
            "label": label,
            "positive_label": positive_label,
            "sensitive": _names(sensitive),
            "categorical": _names(categorical),
            "numerical": _names(numerical),
            "encoding": encoding,
            "max_categories": max_categories,
            "data_dir": data_dir,
            "split": {**(_split(split) if split else {}), "official": official_split},
            "target": target,
            "target_path": load_target,
            "target_url": target_url,
            "api_key_env": api_key_env,
            "auditor_key_env": auditor_key_env,
            "attack": attack,
            "attack_params": {
                **_key_values("--attack-param", attack_param),
                **({"strategy": strategy} if strategy is not None else {}),
            },
            "query_batch_size": query_batch,
            "defences": list(defence or []),
            "detect": detect,
            "detect_params": _key_values("--detect-param", detect_param),
            "detect_refuse": detect_refuse,
            "budgets": _ints("--budget", budget) if budget is not None else None,
            "output": output,
            "top_k": top_k,
            "decimals": decimals,
            "surrogate": surrogate,
            "labels": labels,
            "explorer": explorer,
            "epsilons": _floats("--epsilon", epsilon),
            "criterion": criterion,
            "selection_fraction": selection_fraction,
            **_explorer_sections(
                explorer,
                _key_values("--explorer-param", explorer_param),
                dropout={
                    "kind": dropout_kind,
                    "semantics": dropout_semantics,
                    "layers": dropout_layers,
                    "p_max": p_max,
                    "n_rates": n_rates,
                    "rates": _floats("--rates", rates) if rates else None,
                    "members_per_rate": members_per_rate,
                },
                retrain={"n_members": retrain_members, "bootstrap": bootstrap},
            ),
            "holdout_fraction": holdout,
            "fairness_method": fairness_method,
            "capacity": capacity,
            "convergence_orders": convergence_orders,
            "chunk_mb": chunk_mb,
            "min_group_size": min_group_size,
            "fairness_bootstrap": fairness_bootstrap,
            "baselines": {"explorer_floor": explorer_floor, "target_members": baseline_members},
            "seed": seed_list[0] if seed_list else seed,
            "seeds": seed_list,
            "workers": workers,
            "threads": threads,
        }
        config = load_config(raw)
    except ValidationError as exc:
        raise _fail(config_error_message(exc)) from None
    except MultistealError as exc:
        raise _fail(str(exc)) from None
    _execute(config, out, quiet=quiet, started=started, force=force, resume=resume)


@app.command()
def run(
    config_file: Annotated[
        Path, typer.Argument(help="A YAML configuration (e.g. a run's config.yaml).")
    ],
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/audit"),
    force: Annotated[
        bool, typer.Option(help="Remove an existing, non-empty --out folder before running.")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Finish an interrupted run in --out (same configuration).")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run an audit from a YAML configuration (every field of ``config.yaml``)."""
    from multisteal.experiments import load_config

    started = time.perf_counter()
    try:
        config = load_config(config_file)
    except MultistealError as exc:
        raise _fail(str(exc)) from None
    _execute(config, out, quiet=quiet, started=started, force=force, resume=resume)


def _key_values(option: str, items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise _fail(BAD_KEY_VALUE.format(option=option, value=item))
        out[key.strip()] = value.strip()
    return out


def _explorer_sections(
    explorer: str, params: dict[str, str], **sections: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Every explorer's parameters beside its name (the configuration's older form): the
    dedicated options of dropout and retrain, with ``--explorer-param`` values for the chosen
    explorer on top."""
    out = {name: dict(values) for name, values in sections.items()}
    # "scales=0.1,0.2": a comma-separated value is a list
    out.setdefault(explorer, {}).update(
        {k: v.split(",") if "," in v else v for k, v in params.items()}
    )
    return out


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _prepare_out(out: Path, *, force: bool) -> None:
    """Check ``out`` can take a new run before any work: refuse a file, a non-empty folder
    without ``--force`` (which removes the old contents first) and a folder we cannot write."""
    if out.is_symlink():
        raise CLIError(OUT_IS_LINK.format(out=out))
    if out.exists() and not out.is_dir():
        raise CLIError(OUT_IS_FILE.format(out=out))
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise CLIError(OUT_NOT_EMPTY.format(out=out))
        if not any((out / name).is_file() for name in RUN_MARKERS):
            raise CLIError(NOT_A_RUN_FOLDER.format(out=out))  # --force replaces runs only
        try:
            shutil.rmtree(out)
        except OSError as exc:
            raise CLIError(OUT_NOT_WRITABLE.format(out=out, reason=exc.strerror or exc)) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise CLIError(OUT_NOT_WRITABLE.format(out=out, reason=exc.strerror or exc)) from None


RUN_LOG = "run.log"


class _RunLog:
    """``RUN_DIR/run.log``: every step with its time, the timings, warnings and how it ended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.perf_counter()

    def write(self, message: str) -> str:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp} [{time.perf_counter() - self.start:7.1f} s] {message}"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return line

    @contextlib.contextmanager
    def warnings(self) -> Iterator[None]:
        """Python warnings raised during the run are shown as usual and logged."""
        shown = warnings.showwarning

        def record(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
            self.write(f"warning: {category.__name__}: {message}")
            shown(message, category, *args, **kw)

        warnings.showwarning = record
        try:
            yield
        finally:
            warnings.showwarning = shown


class _TerminatedError(Exception):
    """SIGTERM, turned into an exception so that a run stops like on Ctrl-C."""


class _StopSignals:
    """Turns SIGINT/SIGTERM into exceptions, held back while a checkpoint is being written."""

    def __init__(self) -> None:
        self.deferring = False
        self.pending: BaseException | None = None

    def handle(self, signum: int, _frame: object) -> None:
        error: BaseException = (
            KeyboardInterrupt() if signum == signal.SIGINT else _TerminatedError()
        )
        if self.deferring:
            self.pending = self.pending or error
            return
        raise error

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error


_STOP = _StopSignals()


def _execute(
    config: AuditConfig,
    out: Path,
    *,
    quiet: bool,
    started: float,
    force: bool = False,
    resume: bool = False,
) -> None:
    """Run the audit with a progress bar, write the run directory and print the summary."""
    from multisteal.experiments import run_audit
    from multisteal.experiments.io import check_resumable, read_result, write_run
    from multisteal.report import write_report

    # The outermost folder this run creates (out itself, or a missing parent of it).
    created: Path | None = None
    if not out.exists():
        created = out
        while not created.parent.exists():
            created = created.parent
    previous: dict[int, AuditResult] = {}
    try:
        if force and resume:
            raise CLIError(FORCE_AND_RESUME)
        if resume:
            check_resumable(config, out)
            previous = read_result(config, out)
        else:
            _prepare_out(out, force=force)
    except MultistealError as exc:
        raise _fail(str(exc)) from None

    n_seeds = len(config.seed_list)
    per_seed = 4 + 4 * len(config.budgets)
    steps = per_seed * n_seeds if config.workers == 1 or n_seeds == 1 else n_seeds
    finished: list[str] = []

    def save_partial(partial: AuditResult) -> None:
        # Ctrl-C or SIGTERM during a checkpoint is held until the tables and the record of what
        # they hold agree; it then stops the run as usual.
        with _STOP.deferred():
            _checkpoint(partial)

    def _checkpoint(partial: AuditResult) -> None:
        write_run(partial, out)
        if partial.results.empty:
            return
        done = partial.results.groupby("seed")["budget"].unique()
        finished[:] = [
            f"seed {seed}: budgets {', '.join(map(str, sorted(int(b) for b in budgets)))}"
            for seed, budgets in done.items()
        ]

    log = _RunLog(out / RUN_LOG)
    log.write(f"multisteal {__version__}: audit of {config.data_name}, seeds {config.seed_list}")
    handlers = {sig: signal.signal(sig, _STOP.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    # A terminal gets a live progress bar; anything else (a file, a CI log) plain lines.
    plain = not quiet and not console.is_terminal
    try:
        with (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
                disable=quiet or plain,
            ) as bar,
            log.warnings(),
        ):
            task = bar.add_task("audit", total=steps)

            def progress(message: str) -> None:
                if n_seeds > 1 and config.workers == 1:
                    message = f"[{len(finished_seeds) + 1}/{n_seeds} seeds] {message}"
                bar.update(task, description=message, advance=1)
                line = log.write(message)
                if plain:
                    print(line, file=sys.stderr, flush=True)

            finished_seeds: list[int] = []

            if previous:
                log.write(
                    "resuming: kept "
                    + "; ".join(
                        f"seed {seed}: budgets {sorted(int(b) for b in part.results['budget'].unique())}"
                        for seed, part in previous.items()
                    )
                )
            result = run_audit(
                config,
                progress=progress,
                checkpoint=save_partial,
                on_seed=finished_seeds.append,
                previous=previous,
            )
            bar.update(task, description="writing run directory", completed=steps)
            write_run(result, out)
            write_report(out)
            data_notes = str(result.results["data_notes"].iloc[0])
            if data_notes != "none":
                note = f"Note: {data_notes}."
                console.print(note, highlight=False, markup=False)
                log.write(note)
            capped = str(result.results["capped_categories"].iloc[0])
            if capped != "none":
                note = f"Note: categorical features capped by --max-categories: {capped}."
                console.print(note, highlight=False, markup=False)
                log.write(note)
            for step, seconds in result.timings.items():
                log.write(f"timing {step}: {seconds:.3f} s")
            log.write(f"finished in {time.perf_counter() - started:.1f} s")
    except (MultistealError, KeyboardInterrupt, _TerminatedError) as exc:
        code = {KeyboardInterrupt: 130, _TerminatedError: 143}.get(type(exc), 2)
        message = {130: INTERRUPTED, 143: TERMINATED}.get(code) or str(exc) or type(exc).__name__
        if finished:
            kept = "; ".join(finished)
            message += "\n" + PARTIAL_KEPT.format(out=out, budgets=kept)
            try:
                write_report(
                    out, partial=PARTIAL_NOTE.format(reason=message.splitlines()[0], kept=kept)
                )
            except Exception as report_error:  # the tables are kept even if the report fails
                message += f"\n(The partial summary could not be written: {report_error}.)"
        log.write(f"stopped (exit {code}): {message}")
        if not finished and created is not None:
            shutil.rmtree(created, ignore_errors=True)  # nothing to keep: leave no folder behind
        raise _fail(message, code=code) from None
    except Exception as exc:  # a bug, not bad input: keep what is finished and say where to look
        import traceback

        log.write("internal error:\n" + traceback.format_exc())
        message = INTERNAL_ERROR.format(kind=type(exc).__name__, detail=exc, log=out / RUN_LOG)
        if finished:
            message += "\n" + PARTIAL_KEPT.format(out=out, budgets="; ".join(finished))
        raise _fail(message, code=1) from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    console.print(f"Wrote {out} in {time.perf_counter() - started:.1f} s", highlight=False)
    typer.echo((out / "summary.md").read_text())


@app.command()
def datasets() -> None:
    """List the bundled datasets."""
    from multisteal.data import DATASETS

    for name, spec in DATASETS.items():
        typer.echo(f"{name}: {getattr(spec, 'description', '')}")


@app.command()
def attacks() -> None:
    """List the extraction attacks: modalities, answers they need, parameters, reference."""
    from multisteal.attacks import ATTACKS

    for name, spec in ATTACKS.items():
        needs = [
            f"modalities {'/'.join(spec.modalities)}",
            f"answers {'/'.join(spec.output_modes)}",
        ]
        if spec.needs_pool:
            needs.append("the attacker's pool")
        if spec.needs_torch:
            needs.append("a torch surrogate")
        params = ", ".join(f"{k} ({t.__name__})" for k, t in spec.params.items())
        typer.echo(f"{name}: {spec.description}")
        typer.echo(f"    needs: {'; '.join(needs)}" + (f"; parameters: {params}" if params else ""))
        if spec.reference:
            typer.echo(f"    reference: {spec.reference}")


@app.command()
def explorers() -> None:
    """List the Rashomon explorers: the surrogate families each explores, and its reference."""
    from multisteal.experiments.config import explorer_parameters
    from multisteal.rashomon import EXPLORERS

    for name, spec in EXPLORERS.items():
        families = "any family" if spec.families is None else ", ".join(spec.families)
        typer.echo(f"{name}: {spec.description}")
        typer.echo(f"    surrogates: {families}")
        params = "; ".join(f"{k} ({v})" for k, v in explorer_parameters(name).items())
        typer.echo(f"    parameters (--explorer-param key=value): {params}")
        if spec.reference:
            typer.echo(f"    reference: {spec.reference}")


@app.command()
def defences() -> None:
    """List the answer-side defences and their parameters (for --defence name:param=value)."""
    from multisteal.query.defences import DEFENCES

    for name, spec in DEFENCES.items():
        params = ", ".join(f"{k} ({t.__name__})" for k, t in spec.params.items())
        typer.echo(f"{name}: {spec.description}" + (f" — parameters: {params}" if params else ""))


@app.command()
def report(run: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Re-render summary.md and figures of a run directory from its tables."""
    from multisteal.report import write_report

    try:
        paths = write_report(run)
    except FileNotFoundError as exc:
        raise _fail(f"{run} is not a run directory: {exc.filename} is missing.") from None
    except NotADirectoryError:
        raise _fail(f"{run} is not a run directory: it is a file.") from None
    except MultistealError as exc:
        raise _fail(str(exc)) from None
    for path in paths:
        typer.echo(str(path))


keys_app = typer.Typer(no_args_is_help=True, help="API keys of a prediction service.")
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="A unique name for the key (who holds it).")],
    budget: Annotated[int, typer.Option(help="Rows the key may have answered in total.")],
    db: Annotated[
        str,
        typer.Option(help="The service's store: sqlite:///PATH or postgresql://USER@HOST/DB."),
    ],
    rate: Annotated[
        float | None, typer.Option(help="Requests per second the key may make (default: none).")
    ] = None,
    auditor: Annotated[
        bool,
        typer.Option(
            help="An auditor's key: answered with the target's full probabilities, without "
            "defences or detection (for multisteal audit --auditor-key-env)."
        ),
    ] = False,
) -> None:
    """Create an API key and print it (only now: the store keeps its hash)."""
    from multisteal.service.store import open_store

    path = Path(db[len("sqlite:///") :].partition("?")[0]) if db.startswith("sqlite:///") else None
    new = path is not None and not path.exists()
    try:
        with open_store(db) as store:
            key = store.add_key(name, budget, rate, auditor=auditor)
    except MultistealError as exc:
        raise _fail(str(exc)) from None
    if new:  # (on stderr: stdout holds only the key, for $(multisteal keys add ...))
        typer.echo(NEW_STORE.format(path=path, db=db), err=True)
    typer.echo(key)


@app.command()
def serve(
    target_dir: Annotated[
        Path, typer.Argument(help="A saved target, e.g. RUN_DIR/target.", exists=True)
    ],
    output: Annotated[
        str,
        typer.Option(help="What the service reveals: probabilities, top-k, label, rounded, leaf."),
    ] = "probabilities",
    top_k: Annotated[int, typer.Option(help="Scores revealed by --output top-k.")] = 1,
    decimals: Annotated[int, typer.Option(help="Decimals of --output rounded.")] = 2,
    defence: Annotated[
        list[str] | None,
        typer.Option(help="An answer-side defence name:param=value (repeatable, in order)."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="The store of keys, budgets and the query log: sqlite:///PATH (default: "
            "service.db beside the target) or postgresql://USER@HOST/DB (shared by replicas)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    max_batch: Annotated[int, typer.Option(help="Largest batch one request may send.")] = 1024,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body, in bytes (larger: 413).")
    ] = 32 * 2**20,
    seed: Annotated[int, typer.Option(help="Seed of the defences' noise.")] = 0,
    detect: Annotated[
        str,
        typer.Option(
            help="Query-stream detector per API key: none or prada (Juuti et al. 2019); every "
            "worker and replica judges the key's logged stream."
        ),
    ] = "none",
    detect_param: Annotated[
        list[str] | None,
        typer.Option(
            help="Detector parameter key=value, repeatable (prada: delta, min_distances)."
        ),
    ] = None,
    detect_refuse: Annotated[
        bool,
        typer.Option(help="Once a key's stream is flagged, refuse its every further query (403)."),
    ] = False,
) -> None:
    """Serve a saved target as an HTTP prediction API (FastAPI under uvicorn)."""
    import os

    from multisteal.service.app import CONFIG_ENV, app_from_env
    from multisteal.service.serve import default_store_url, settings_json

    try:
        os.environ[CONFIG_ENV] = settings_json(
            target_dir,
            store_url=db or default_store_url(target_dir),
            output=output,
            k=top_k,
            decimals=decimals,
            defences=list(defence or []),
            seed=seed,
            max_batch=max_batch,
            max_body_bytes=max_body_bytes,
            detect=detect,
            detect_params=_key_values("--detect-param", detect_param),
            detect_refuse=detect_refuse,
            workers=workers,
        )
        app_from_env()  # fail here, with a clear message, rather than in every worker
    except MultistealError as exc:
        raise _fail(str(exc)) from None
    import uvicorn

    uvicorn.run(
        "multisteal.service.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="multisteal")
    sys.exit(0)
