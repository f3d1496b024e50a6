"""Preparing an audit's data: load, split by the split stream, encode on target-train only."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data import (
    TabularDataset,
    TabularPreprocessor,
    load_csv,
    load_dataset,
    split_dataset,
)
from multisteal.data._csv import MISSING_CATEGORY
from multisteal.errors import ConfigError
from multisteal.experiments.config import AuditConfig

__all__ = [
    "TOO_FEW_GROUPS",
    "TOO_FEW_ROWS",
    "UNKNOWN_POSITIVE_LABEL",
    "PreparedData",
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


@dataclass(frozen=True)
class PreparedData:
    """A dataset split and encoded for an audit (encoder fitted on target-train only).

    ``X_eval``/``y_eval``/``sensitive_eval`` are the rows every metric is measured on. With a
    ``test-*`` criterion a part of the evaluation split is set aside as ``X_select`` to select
    Rashomon members, and the metrics use only the rest: no row both selects and measures.
    ``evaluation_index`` and ``selection_index`` are the rows' positions in the dataset.
    """

    dataset: TabularDataset
    preprocessor: TabularPreprocessor
    split_seed: int
    X_target: NDArray[np.float64]
    y_target: NDArray[np.int64]
    X_pool: NDArray[np.float64]
    X_eval: NDArray[np.float64]
    y_eval: NDArray[np.int64]
    sensitive_eval: pd.DataFrame
    X_select: NDArray[np.float64]
    evaluation_index: NDArray[np.int64]
    selection_index: NDArray[np.int64]
    feature_groups: tuple[NDArray[np.int64], ...]


def _with_positive_label(dataset: TabularDataset, label: str | None) -> TabularDataset:
    if label is None:
        return dataset
    names = [str(c) for c in dataset.class_names]
    if str(label) not in names:
        raise ConfigError(
            UNKNOWN_POSITIVE_LABEL.format(value=label, name=dataset.name, classes=", ".join(names))
        )
    return replace(dataset, positive_class=names.index(str(label)))


def _check_groups(dataset: TabularDataset, rows: NDArray[np.int64], minimum: int) -> None:
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


def prepare_data(config: AuditConfig) -> PreparedData:
    """Load the configured data, split it and fit the encoder on the target-train part."""
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
    else:
        dataset = load_dataset(str(config.dataset), data_dir=config.data_dir)
        dataset = _with_positive_label(dataset, config.positive_label)
    split = config.split
    split_seed = config.stage_seed("split")
    splits = split_dataset(
        dataset.y, sizes=(split.target_train, split.pool, split.evaluation), seed=split_seed
    )
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
    for part, rows in (("target-train", splits.target_train), ("evaluation", evaluation)):
        classes = np.unique(dataset.y[rows])
        if classes.size < 2:
            raise ConfigError(
                ONE_CLASS_PART.format(part=part, rows=len(rows), classes=classes.size)
            )
    _check_groups(dataset, evaluation, config.min_group_size)
    features = dataset.features
    pre = TabularPreprocessor(
        categorical=list(dataset.categorical),
        numerical=list(dataset.numerical),
        max_categories=config.max_categories,
    ).fit(features.iloc[splits.target_train])

    def encode(idx: NDArray[np.int64]) -> NDArray[np.float64]:
        if idx.size == 0:
            return np.zeros((0, len(pre.feature_names_out_)), dtype=np.float64)
        return np.asarray(pre.transform(features.iloc[idx]), dtype=np.float64)

    return PreparedData(
        dataset=dataset,
        preprocessor=pre,
        split_seed=split_seed,
        X_target=encode(np.asarray(splits.target_train, dtype=np.int64)),
        y_target=dataset.y[splits.target_train],
        X_pool=encode(np.asarray(splits.pool, dtype=np.int64)),
        X_eval=encode(evaluation),
        y_eval=dataset.y[evaluation],
        sensitive_eval=dataset.sensitive.iloc[evaluation].reset_index(drop=True),
        X_select=encode(selection),
        evaluation_index=evaluation,
        selection_index=selection,
        feature_groups=tuple(np.asarray(cols, dtype=np.int64) for _, cols in pre.feature_groups_),
    )
