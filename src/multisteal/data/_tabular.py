"""Parsers that turn the upstream files of the tabular benchmarks into ``TabularDataset``.

Each parser takes the verified paths of the dataset's files (keyed by upstream file name) and
the ``source`` string to record. Paths may be plain or gzip-compressed (``.gz``); pandas infers
the compression from the suffix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from multisteal.data._dataset import TabularDataset
from multisteal.errors import DataError

__all__ = ["parse_adult", "parse_compas", "parse_german_credit"]

UNEXPECTED_VALUES_MSG = "Dataset {dataset!r}: column {column!r} has unexpected values: {values}."
MISSING_COLUMNS_MSG = "Dataset {dataset!r}: {path} lacks the columns: {columns}."

MISSING_CATEGORY = "missing"


def _check_values(dataset: str, column: str, values: pd.Series, allowed: set[str]) -> None:
    unexpected = sorted(set(values.unique()) - allowed)
    if unexpected:
        raise DataError(
            UNEXPECTED_VALUES_MSG.format(
                dataset=dataset, column=column, values=", ".join(map(str, unexpected[:10]))
            )
        )


def _finish(
    *,
    name: str,
    raw: pd.DataFrame,
    categorical: tuple[str, ...],
    numerical: tuple[str, ...],
    y: np.ndarray,
    sensitive: pd.DataFrame,
    class_names: tuple[str, ...],
    positive_class: int,
    source: str,
) -> TabularDataset:
    """Keep the feature columns in ``raw``'s order, strings for categoricals, floats else."""
    order = [c for c in raw.columns if c in categorical or c in numerical]
    features = pd.DataFrame(
        {c: raw[c].astype(str) if c in categorical else raw[c].astype(np.float64) for c in order}
    ).reset_index(drop=True)
    return TabularDataset(
        name=name,
        features=features,
        y=np.ascontiguousarray(y, dtype=np.int64),
        sensitive=sensitive.astype(str).reset_index(drop=True),
        class_names=class_names,
        categorical=tuple(c for c in order if c in categorical),
        numerical=tuple(c for c in order if c in numerical),
        source=source,
        positive_class=positive_class,
    )


# --------------------------------------------------------------------------------------- Adult

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)
# fnlwgt is the census sampling weight, not an attribute of the person; education is the same
# information as education_num (a one-to-one recoding), so only the ordinal number is kept.
ADULT_NUMERICAL = ("age", "education_num", "capital_gain", "capital_loss", "hours_per_week")
ADULT_CATEGORICAL = (
    "workclass",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
)
ADULT_CLASSES = ("<=50K", ">50K")


def _read_adult_file(path: Path, *, skip_first_line: bool) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        header=None,
        names=list(ADULT_COLUMNS),
        sep=",",
        skipinitialspace=True,
        skiprows=1 if skip_first_line else 0,
        dtype=dict.fromkeys((*ADULT_CATEGORICAL, "education", "income"), str),
        keep_default_na=False,
        na_values=[],
    )
    frame["income"] = frame["income"].str.strip().str.rstrip(".")
    return frame


def parse_adult(paths: Mapping[str, Path], source: str) -> TabularDataset:
    """UCI Adult: ``adult.data`` followed by ``adult.test`` (48,842 rows, none dropped).

    The comment line of ``adult.test`` is skipped and the trailing ``.`` of its labels removed.
    ``?`` (unknown workclass, occupation or native country) becomes its own category
    ``"missing"``. Label: income ``">50K"`` = 1 (favourable), ``"<=50K"`` = 0.
    Sensitive: ``sex`` and ``race`` (also kept as features).
    """
    raw = pd.concat(
        [
            _read_adult_file(paths["adult.data"], skip_first_line=False),
            _read_adult_file(paths["adult.test"], skip_first_line=True),
        ],
        ignore_index=True,
    )
    _check_values("adult", "income", raw["income"], set(ADULT_CLASSES))
    for column in ADULT_CATEGORICAL:
        raw[column] = raw[column].str.strip().replace("?", MISSING_CATEGORY)
    y = (raw["income"] == ">50K").to_numpy(dtype=np.int64)
    return _finish(
        name="adult",
        raw=raw,
        categorical=ADULT_CATEGORICAL,
        numerical=ADULT_NUMERICAL,
        y=y,
        sensitive=raw[["sex", "race"]],
        class_names=ADULT_CLASSES,
        positive_class=1,
        source=source,
    )


# -------------------------------------------------------------------------------------- COMPAS

COMPAS_NUMERICAL = (
    "age",
    "juv_fel_count",
    "juv_misd_count",
    "juv_other_count",
    "priors_count",
)
COMPAS_CATEGORICAL = ("sex", "race", "c_charge_degree")
COMPAS_CLASSES = ("no_recid", "recid")


def parse_compas(paths: Mapping[str, Path], source: str) -> TabularDataset:
    """ProPublica COMPAS two-year recidivism (7,214 rows, no row filtering).

    Features: sex, age, race, juvenile felony / misdemeanour / other counts, priors count and
    the charge degree (``F`` felony, ``M`` misdemeanour). COMPAS's own outputs
    (``decile_score``, ``score_text``, …), personal identifiers, dates and every column known
    only after the screening (``is_recid``, ``r_*``, ``vr_*``, custody, ``event``…) are not used.
    Label: ``two_year_recid`` (1 = ``"recid"``, re-offended within two years; 0 =
    ``"no_recid"``). The favourable outcome for fairness is **no recidivism**, so
    ``positive_class = 0`` (as in AIF360). Sensitive: ``race`` and ``sex``.
    """
    path = paths["compas-scores-two-years.csv"]
    raw = pd.read_csv(path)
    needed = [*COMPAS_CATEGORICAL, *COMPAS_NUMERICAL, "two_year_recid"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(
            MISSING_COLUMNS_MSG.format(dataset="compas", path=path, columns=", ".join(missing))
        )
    label = raw["two_year_recid"]
    _check_values("compas", "two_year_recid", label.astype(str), {"0", "1"})
    raw = raw[["sex", "age", "race", *COMPAS_NUMERICAL[1:], "c_charge_degree"]]
    return _finish(
        name="compas",
        raw=raw,
        categorical=COMPAS_CATEGORICAL,
        numerical=COMPAS_NUMERICAL,
        y=label.to_numpy(dtype=np.int64),
        sensitive=raw[["race", "sex"]],
        class_names=COMPAS_CLASSES,
        positive_class=0,
        source=source,
    )


# ------------------------------------------------------------------------------- German credit

# Attribute names and code meanings from the UCI codebook german.doc.
GERMAN_COLUMNS = (
    "checking_status",
    "duration_months",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status_sex",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "num_dependents",
    "telephone",
    "foreign_worker",
    "credit_risk",
)
GERMAN_CODES: dict[str, dict[str, str]] = {
    "checking_status": {
        "A11": "< 0 DM",
        "A12": "0 <= ... < 200 DM",
        "A13": ">= 200 DM / salary assignments for at least 1 year",
        "A14": "no checking account",
    },
    "credit_history": {
        "A30": "no credits taken / all credits paid back duly",
        "A31": "all credits at this bank paid back duly",
        "A32": "existing credits paid back duly till now",
        "A33": "delay in paying off in the past",
        "A34": "critical account / other credits existing (not at this bank)",
    },
    "purpose": {
        "A40": "car (new)",
        "A41": "car (used)",
        "A42": "furniture/equipment",
        "A43": "radio/television",
        "A44": "domestic appliances",
        "A45": "repairs",
        "A46": "education",
        "A47": "vacation",
        "A48": "retraining",
        "A49": "business",
        "A410": "others",
    },
    "savings": {
        "A61": "< 100 DM",
        "A62": "100 <= ... < 500 DM",
        "A63": "500 <= ... < 1000 DM",
        "A64": ">= 1000 DM",
        "A65": "unknown / no savings account",
    },
    "employment_since": {
        "A71": "unemployed",
        "A72": "< 1 year",
        "A73": "1 <= ... < 4 years",
        "A74": "4 <= ... < 7 years",
        "A75": ">= 7 years",
    },
    "personal_status_sex": {
        "A91": "male: divorced/separated",
        "A92": "female: divorced/separated/married",
        "A93": "male: single",
        "A94": "male: married/widowed",
        "A95": "female: single",
    },
    "other_debtors": {"A101": "none", "A102": "co-applicant", "A103": "guarantor"},
    "property": {
        "A121": "real estate",
        "A122": "building society savings agreement / life insurance",
        "A123": "car or other",
        "A124": "unknown / no property",
    },
    "other_installment_plans": {"A141": "bank", "A142": "stores", "A143": "none"},
    "housing": {"A151": "rent", "A152": "own", "A153": "for free"},
    "job": {
        "A171": "unemployed / unskilled - non-resident",
        "A172": "unskilled - resident",
        "A173": "skilled employee / official",
        "A174": "management / self-employed / highly qualified employee / officer",
    },
    "telephone": {"A191": "none", "A192": "yes, registered under the customer's name"},
    "foreign_worker": {"A201": "yes", "A202": "no"},
}
GERMAN_NUMERICAL = (
    "duration_months",
    "credit_amount",
    "installment_rate",
    "residence_since",
    "age",
    "existing_credits",
    "num_dependents",
)
GERMAN_CATEGORICAL = tuple(GERMAN_CODES)
GERMAN_SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
GERMAN_CLASSES = ("bad", "good")
GERMAN_AGE_THRESHOLD = 25


def parse_german_credit(paths: Mapping[str, Path], source: str) -> TabularDataset:
    """Statlog German credit (1,000 rows), with the ``A..`` codes decoded per ``german.doc``.

    Features: the 20 attributes (7 numerical, 13 categorical). Label: ``"good"`` = 1
    (favourable), ``"bad"`` = 0 (upstream codes 1 / 2). Sensitive: ``sex`` (male for A91, A93,
    A94; female for A92, A95, derived from ``personal_status_sex``) and ``age_group``
    (``"age>=25"`` / ``"age<25"``, derived from ``age``); both source columns stay features.
    """
    raw = pd.read_csv(
        paths["german.data"],
        header=None,
        names=list(GERMAN_COLUMNS),
        sep=" ",
        dtype=dict.fromkeys((*GERMAN_CATEGORICAL, "credit_risk"), str),
        keep_default_na=False,
        na_values=[],
    )
    for column, codes in GERMAN_CODES.items():
        _check_values("german_credit", column, raw[column], set(codes))
    _check_values("german_credit", "credit_risk", raw["credit_risk"], {"1", "2"})
    sensitive = pd.DataFrame(
        {
            "sex": raw["personal_status_sex"].map(GERMAN_SEX),
            "age_group": np.where(
                raw["age"] >= GERMAN_AGE_THRESHOLD,
                f"age>={GERMAN_AGE_THRESHOLD}",
                f"age<{GERMAN_AGE_THRESHOLD}",
            ),
        }
    )
    for column, codes in GERMAN_CODES.items():
        raw[column] = raw[column].map(codes)
    y = (raw["credit_risk"] == "1").to_numpy(dtype=np.int64)
    return _finish(
        name="german_credit",
        raw=raw,
        categorical=GERMAN_CATEGORICAL,
        numerical=GERMAN_NUMERICAL,
        y=y,
        sensitive=sensitive,
        class_names=GERMAN_CLASSES,
        positive_class=1,
        source=source,
    )
