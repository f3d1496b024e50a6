"""Preparing an audit's data: load raw inputs, split them by the split stream.

Nothing is encoded here: the target's encoder is part of the target (fitted on target-train
only), and the attacker's surrogate fits its own encoder on its transcript. The owner publishes
an :class:`~multisteal.data.inputs.InputSpec` for the inputs its service takes.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data import load_csv, load_dataset, split_dataset
from multisteal.data._csv import MISSING_CATEGORY
from multisteal.data._dataset import Dataset
from multisteal.data.inputs import (
    ImageSpec,
    InputSpec,
    TabularSpec,
    input_spec_of,
    take_inputs,
)
from multisteal.data.splits import _stratified_order
from multisteal.errors import ConfigError, InvalidInputError
from multisteal.experiments.config import AuditConfig

__all__ = [
    "POOL_INCOMPATIBLE",
    "TOO_FEW_GROUPS",
    "TOO_FEW_ROWS",
    "UNKNOWN_POSITIVE_LABEL",
    "PreparedData",
    "Probe",
    "input_spec_of",
    "load_configured_dataset",
    "prepare_data",
]

TOO_FEW_ROWS = (
    "A {criterion} criterion sets aside {fraction:.0%} of the {n} evaluation rows to select "
    "members, leaving {select} for selection and {measure} for measuring; each needs at least "
    "{minimum}. Change --selection-fraction or the evaluation size (--split)."
)
MIN_ROWS = 10
TOO_FEW_GROUPS = (
    "Sensitive attribute {attribute!r} has {n_groups} group(s) on the {rows} evaluation rows, and "
    "{large} of them have {minimum} rows or more (--min-group-size): no fairness difference can "
    "be computed.{hint}"
)
CONTINUOUS_HINT = (
    " It looks continuous ({n_groups} distinct values): bin it into a few groups first (e.g. age "
    "bands)."
)
SMALL_GROUPS_HINT = " Give a larger evaluation part with --split, or lower --min-group-size."
ALL_MISSING_HINT = " The column has no values there (all missing): choose another sensitive column."
ONE_CLASS_PART = (
    "The split leaves {part} with {rows} row(s) of {classes} class: a target cannot be trained "
    "or measured on it. Give larger sizes with --split."
)
UNKNOWN_POSITIVE_LABEL = (
    "positive_label {value!r} is not a class of dataset {name!r}. Classes: {classes}."
)
NO_OFFICIAL_SPLIT = (
    "Dataset {name!r} has no official train/test split (split.official is true); leave it unset "
    "to split the rows by --split."
)
OFFICIAL_SIZE = (
    "With the official split of {name!r}, {part} must be a fraction in (0, 1] of the official "
    "{official} part ({n} rows) or a row count up to it; got {value!r}."
)
OFFICIAL_TOO_LARGE = (
    "With the official split of {name!r}, target_train ({target}) and pool ({pool}) rows exceed "
    "the {n} rows of its official train part."
)
POOL_INCOMPATIBLE = (
    "The attacker's pool ({pool}) cannot be sent to the target, which takes {spec}: {problem} "
    "Nothing was queried."
)
POOL_SAME = (
    "--pool-dataset {name} is the audited dataset itself: its whole content would include the "
    "target's training rows and the evaluation rows. The attacker's share of it is the default "
    "pool; leave --pool-dataset out."
)
POOL_MODALITY = (
    "The attacker's pool dataset {pool!r} holds {pool_modality} inputs, but the target takes "
    "{modality} inputs. Nothing was queried."
)


@dataclass(frozen=True)
class Probe:
    """A bias probe scored by every member (the Equity Evaluation Corpus for text models):
    its inputs and the groups to compare (one column per attribute)."""

    name: str
    inputs: Any
    groups: pd.DataFrame


@dataclass(frozen=True)
class PreparedData:
    """A dataset split into raw inputs for an audit.

    ``X_*`` hold raw inputs (records, images or texts). ``X_eval``/``y_eval``/
    ``sensitive_eval`` are the rows every metric is measured on. With a ``test-*`` criterion a
    part of the evaluation split is set aside as ``X_select`` to select Rashomon members, and
    the metrics use only the rest: no row both selects and measures. ``*_index`` are positions
    in the dataset (``pool_index`` in the pool's dataset, ``pool_name``). ``X_val`` (images with
    an official val split) selects the target's epochs; it is never queried.
    """

    dataset: Dataset
    input_spec: InputSpec
    split_seed: int
    X_target: Any
    y_target: NDArray[np.int64]
    X_val: Any
    y_val: NDArray[np.int64] | None
    X_pool: Any
    pool_name: str
    X_eval: Any
    y_eval: NDArray[np.int64]
    sensitive_eval: pd.DataFrame
    X_select: Any
    target_index: NDArray[np.int64]
    pool_index: NDArray[np.int64]
    evaluation_index: NDArray[np.int64]
    selection_index: NDArray[np.int64]
    probe: Probe | None = None

    @property
    def modality(self) -> str:
        return self.dataset.modality


def _with_positive_label(dataset: Dataset, label: str | None) -> Dataset:
    if label is None:
        return dataset
    names = [str(c) for c in dataset.class_names]
    if str(label) not in names:
        raise ConfigError(
            UNKNOWN_POSITIVE_LABEL.format(value=label, name=dataset.name, classes=", ".join(names))
        )
    changed: Dataset = replace(dataset, positive_class=names.index(str(label)))  # type: ignore[type-var]
    return changed


def _check_groups(dataset: Dataset, rows: NDArray[np.int64], minimum: int) -> None:
    """Refuse, before training, sensitive attributes no fairness difference can be computed on:
    one that looks continuous, or all of them when none has two groups of ``minimum`` rows
    (an attribute with too few large groups is otherwise left out, and the summary says so)."""
    usable = False
    first_problem: str | None = None
    for attribute in dataset.sensitive.columns:
        values = dataset.sensitive[attribute].iloc[rows].astype(str)
        counts = values.value_counts()
        large = int((counts >= minimum).sum())
        numeric = bool(pd.to_numeric(values, errors="coerce").notna().mean() > 0.95)
        continuous = numeric and len(counts) > 10  # checked first: a few large values do not
        if large >= 2 and not continuous:  # make a continuous attribute a grouping
            usable = True
            continue
        message = TOO_FEW_GROUPS.format(
            attribute=attribute,
            n_groups=len(counts),
            rows=len(values),
            large=large,
            minimum=minimum,
            hint=CONTINUOUS_HINT.format(n_groups=len(counts))
            if continuous
            else ALL_MISSING_HINT
            if set(counts.index) == {MISSING_CATEGORY}
            else SMALL_GROUPS_HINT,
        )
        if continuous:
            raise ConfigError(message)
        first_problem = first_problem or message
    if not usable and first_problem is not None:
        raise ConfigError(first_problem)


def load_configured_dataset(config: AuditConfig) -> Dataset:
    """The dataset the configuration names: a bundled one, a CSV, an image ``.npz`` or a
    text CSV (with the configured favourable class)."""
    from multisteal.data import load_image_npz, load_text_csv

    dataset: Dataset
    if config.csv is not None:
        dataset = load_csv(
            config.csv,
            label=str(config.label),
            sensitive=list(config.sensitive or []),
            positive_label=config.positive_label,
            categorical=config.categorical,
            numerical=config.numerical,
            encoding=config.encoding,
        )
        return dataset
    if config.images is not None:
        return _with_positive_label(load_image_npz(config.images), config.positive_label)
    if config.text_csv is not None:
        return load_text_csv(
            config.text_csv,
            text_column=str(config.text_column),
            label=str(config.label),
            sensitive=list(config.sensitive or []),
            positive_label=config.positive_label,
            encoding=config.encoding,
        )
    dataset = load_dataset(str(config.dataset), data_dir=config.data_dir)
    return _with_positive_label(dataset, config.positive_label)


def _count(value: int | float, n: int, *, name: str, part: str, official: str) -> int:
    ok_fraction = isinstance(value, float) and not isinstance(value, bool) and 0.0 < value <= 1.0
    ok_count = (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and 1 <= value <= n
    )
    if not (ok_fraction or ok_count):
        raise ConfigError(
            OFFICIAL_SIZE.format(name=name, part=part, official=official, n=n, value=value)
        )
    return max(1, round(value * n)) if ok_fraction else int(value)


def _official_split(
    dataset: Dataset, config: AuditConfig, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """target-train and pool from the official train part (stratified, seeded), evaluation
    from the official test part; the official val part (if any) selects the target's epochs."""
    parts = dataset.parts
    if parts is None or "train" not in parts or "test" not in parts:
        raise ConfigError(NO_OFFICIAL_SPLIT.format(name=dataset.name))
    sizes = config.split.sizes(True)
    train = np.asarray(parts["train"], dtype=np.int64)
    test = np.asarray(parts["test"], dtype=np.int64)
    n_target = _count(
        sizes[0], len(train), name=dataset.name, part="target_train", official="train"
    )
    n_pool = _count(sizes[1], len(train), name=dataset.name, part="pool", official="train")
    if n_target + n_pool > len(train):
        raise ConfigError(
            OFFICIAL_TOO_LARGE.format(name=dataset.name, target=n_target, pool=n_pool, n=len(train))
        )
    n_eval = _count(sizes[2], len(test), name=dataset.name, part="evaluation", official="test")
    rng = np.random.default_rng(seed)
    order = train[_stratified_order(dataset.y[train], rng)]
    target = np.sort(order[:n_target])
    pool = np.sort(order[n_target : n_target + n_pool])
    evaluation = (
        test
        if n_eval == len(test)
        else np.sort(test[_stratified_order(dataset.y[test], rng)][:n_eval])
    )
    val = np.asarray(parts.get("val", np.zeros(0, dtype=np.int64)), dtype=np.int64)
    return target, pool, evaluation, val


def _pool(
    config: AuditConfig,
    dataset: Dataset,
    spec: InputSpec,
    pool_rows: NDArray[np.int64],
    held_out: NDArray[np.int64],
) -> tuple[Any, str, NDArray[np.int64]]:
    """The attacker's pool: its share of the dataset, or another dataset (``pool_dataset``)
    whose inputs are checked against the target's input spec before any query."""
    if config.pool_dataset is None:
        return take_inputs(dataset.inputs, pool_rows), dataset.name, pool_rows
    if config.pool_dataset == config.dataset:
        raise ConfigError(POOL_SAME.format(name=config.pool_dataset))
    other = load_dataset(config.pool_dataset, data_dir=config.data_dir)
    if other.modality != dataset.modality:
        raise ConfigError(
            POOL_MODALITY.format(
                pool=other.name, pool_modality=other.modality, modality=dataset.modality
            )
        )
    inputs = other.inputs
    try:
        inputs = spec.validate(inputs)
    except InvalidInputError as exc:
        raise ConfigError(
            POOL_INCOMPATIBLE.format(pool=other.name, spec=_describe_spec(spec), problem=exc)
        ) from None
    # Another corpus may hold the audited data's own inputs (SST-2 was built from Rotten
    # Tomatoes' sentences): those would put evaluation or target-train rows in the attacker's
    # hands, so they leave the pool.
    own = {_input_key(x) for x in _items(dataset.inputs)}
    keys = [_input_key(x) for x in _items(inputs)]
    keep = np.asarray([k not in own for k in keys], dtype=bool)
    if dataset.modality == "text":
        # SST-2's training items are phrases of Rotten Tomatoes sentences: a phrase of an
        # evaluation sentence would leak it piece by piece, so those leave the pool too.
        held = "\n".join(str(_input_key(t)) for t in take_inputs(dataset.inputs, held_out))
        keep &= np.asarray([str(k) not in held for k in keys], dtype=bool)
    rows = np.flatnonzero(keep).astype(np.int64)
    return take_inputs(inputs, rows), other.name, rows


def _items(inputs: Any) -> list[Any]:
    if isinstance(inputs, pd.DataFrame):
        return [tuple(map(str, row)) for row in inputs.itertuples(index=False)]
    return list(inputs)


def _input_key(item: Any) -> Any:
    """What makes two inputs the same one: a text's words (case, punctuation and the PTB
    bracket tokens aside), an image's pixels, a record's values."""
    if isinstance(item, str):
        text = item.lower().replace("-lrb-", "(").replace("-rrb-", ")")
        return " ".join("".join(c if c.isalnum() else " " for c in text).split())
    if isinstance(item, np.ndarray):
        return np.ascontiguousarray(item, dtype=np.float64).tobytes()
    return item


def _describe_spec(spec: InputSpec) -> str:
    if isinstance(spec, ImageSpec):
        return "images of shape (n, " + ", ".join(map(str, spec.shape)) + ")"
    if isinstance(spec, TabularSpec):
        return f"records with the columns {', '.join(spec.names)}"
    return "texts"


def _probe(config: AuditConfig, dataset: Dataset) -> Probe | None:
    if not config.probe_enabled(dataset.modality):
        return None
    eec = load_dataset("eec", data_dir=config.data_dir)
    return Probe("eec", eec.inputs, eec.sensitive.reset_index(drop=True))


def prepare_data(config: AuditConfig) -> PreparedData:
    """Load the configured data and split it into raw inputs (nothing is encoded here)."""
    dataset = load_configured_dataset(config)
    spec = input_spec_of(dataset)
    split_seed = config.stage_seed("split")
    official = config.split.official
    if official is None:
        official = dataset.parts is not None and "test" in (dataset.parts or {})
    val = np.zeros(0, dtype=np.int64)
    if official:
        target_rows, pool_rows, evaluation, val = _official_split(dataset, config, split_seed)
    else:
        splits = split_dataset(dataset.y, sizes=config.split.sizes(False), seed=split_seed)
        target_rows, pool_rows = splits.target_train, splits.pool
        evaluation = np.asarray(splits.evaluation, dtype=np.int64)
    selection = np.zeros(0, dtype=np.int64)
    if config.is_split_criterion:
        order = np.random.default_rng([split_seed, 1]).permutation(evaluation.size)
        n_select = round(config.selection_fraction * evaluation.size)
        if min(n_select, evaluation.size - n_select) < MIN_ROWS:
            raise ConfigError(
                TOO_FEW_ROWS.format(
                    criterion=config.criterion,
                    fraction=config.selection_fraction,
                    n=evaluation.size,
                    select=n_select,
                    measure=evaluation.size - n_select,
                    minimum=MIN_ROWS,
                )
            )
        selection = np.sort(evaluation[order[:n_select]])
        evaluation = np.sort(evaluation[order[n_select:]])
    for part, rows in (("target-train", target_rows), ("evaluation", evaluation)):
        classes = np.unique(dataset.y[rows])
        if classes.size < 2:
            raise ConfigError(
                ONE_CLASS_PART.format(part=part, rows=len(rows), classes=classes.size)
            )
    _check_groups(dataset, evaluation, config.min_group_size)
    X_pool, pool_name, pool_index = _pool(
        config,
        dataset,
        spec,
        np.asarray(pool_rows, np.int64),
        np.concatenate([evaluation, selection]).astype(np.int64),
    )
    inputs = dataset.inputs
    return PreparedData(
        dataset=dataset,
        input_spec=spec,
        split_seed=split_seed,
        X_target=take_inputs(inputs, target_rows),
        y_target=dataset.y[target_rows],
        X_val=take_inputs(inputs, val) if val.size else None,
        y_val=dataset.y[val] if val.size else None,
        X_pool=X_pool,
        pool_name=pool_name,
        X_eval=take_inputs(inputs, evaluation),
        y_eval=dataset.y[evaluation],
        sensitive_eval=dataset.sensitive.iloc[evaluation].reset_index(drop=True),
        X_select=take_inputs(inputs, selection),
        target_index=np.asarray(target_rows, dtype=np.int64),
        pool_index=pool_index,
        evaluation_index=evaluation,
        selection_index=selection,
        probe=_probe(config, dataset),
    )
