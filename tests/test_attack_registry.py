"""Every registered attack, under every output mode it accepts, on every modality it applies to:

* it never receives an answer beyond its budget (the ledger never refuses it, and the rows it
  was answered equal what the ledger counted, at most the budget);
* it touches the target only through the API (the model answered exactly the rows the ledger
  counted: an attack that called the model directly would make it answer more);
* it is deterministic under its seed (same transcript twice), and its seed matters;
* its registry entry refuses, before any query, the modalities and modes it does not take.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from multisteal.attacks import ATTACKS, AttackContext, AttackSetting, run_registered
from multisteal.data.inputs import ImageSpec, TabularSpec, TextSpec, inputs_digest
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import make_pipeline
from multisteal.query import OUTPUT_MODES, LocalQueryAPI
from multisteal.surrogates import fit_surrogate

BUDGET = 90
# Parameters that keep each attack's inner loop small enough for a unit test.
QUICK: dict[str, dict[str, Any]] = {
    "knockoff-adaptive": {"rounds": 3},
    "activethief": {"rounds": 3},
    "label-only-retraining": {"rounds": 3},
    "jacobian": {"max_rounds": 3},
}


class CountingModel:
    """The target, counting the rows it is asked to score (through any door)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.rows = 0
        self.leaf_rows = 0

    @property
    def classes_(self) -> Any:
        return self.model.classes_

    def predict_proba(self, X: Any) -> Any:
        self.rows += len(X)
        return self.model.predict_proba(X)

    def apply(self, X: Any) -> Any:
        self.leaf_rows += len(X)
        return self.model.apply(X)


def _records(n: int, rng: np.random.Generator) -> pd.DataFrame:
    colour = rng.choice(["red", "green", "blue"], size=n)
    age = rng.integers(18, 80, size=n)
    income = rng.normal(50.0, 15.0, size=n).clip(0, 120)
    return pd.DataFrame({"colour": colour, "age": age, "income": income})


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(0)
    records = _records(600, rng)
    y = ((records["age"] > 45) ^ (records["colour"] == "red")).to_numpy().astype(np.int64)
    tab_spec = TabularSpec.from_frame(records, categorical=["colour"], numerical=["age", "income"])
    tree = make_pipeline("tree", tab_spec, n_classes=2, random_state=0).fit(records, y)
    pool = _records(400, rng)  # the attacker's own records, inside the published ranges
    pool["age"] = pool["age"].clip(records["age"].min(), records["age"].max())
    pool["income"] = pool["income"].clip(records["income"].min(), records["income"].max())

    images = rng.uniform(0, 1, size=(240, 6, 6))
    y_img = (images[:, :3].mean(axis=(1, 2)) > images[:, 3:].mean(axis=(1, 2))).astype(np.int64)
    img_spec = ImageSpec(6, 6, low=0.0, high=1.0)
    cnn = make_pipeline("cnn", img_spec, n_classes=2, random_state=0, epochs=2).fit(images, y_img)

    words = np.array(["good", "great", "fine", "bad", "awful", "poor", "film", "plot", "cast"])
    texts = np.array([" ".join(rng.choice(words, size=5)) for _ in range(300)], dtype=object)
    y_txt = np.array([sum(w in ("good", "great", "fine") for w in t.split()) >= 2 for t in texts])
    txt_spec = TextSpec()
    tfidf = make_pipeline("tfidf-logistic", txt_spec, n_classes=2, random_state=0).fit(
        texts, y_txt.astype(np.int64)
    )
    return {
        "tabular": {
            "spec": tab_spec,
            "target": tree,
            "pool": pool,
            "surrogate": "mlp",
        },
        "image": {
            "spec": img_spec,
            "target": cnn,
            "pool": rng.uniform(0, 1, size=(200, 6, 6)),
            "surrogate": "cnn",
        },
        "text": {
            "spec": txt_spec,
            "target": tfidf,
            "pool": texts[:200],
            "surrogate": "tfidf-logistic",
        },
    }


CASES = [
    (name, mode, modality)
    for name, spec in ATTACKS.items()
    for modality in spec.modalities
    for mode in spec.output_modes
    if mode != "leaf" or modality == "tabular"
]


def _fit(problem: dict[str, Any]) -> Any:
    architecture = problem["surrogate"]
    params: dict[str, Any] = {"epochs": 2} if architecture in ("mlp", "cnn") else {}

    def fit(transcript: Any, seed: int) -> Any:
        return fit_surrogate(
            transcript,
            architecture=architecture,
            input_spec=problem["spec"],
            random_state=seed,
            **params,
        )

    return fit


def _run(name: str, mode: str, problem: dict[str, Any], seed: int) -> tuple[Any, Any, Any]:
    model = CountingModel(problem["target"])
    api = LocalQueryAPI(model, output=mode, budget=BUDGET, input_spec=problem["spec"])
    context = AttackContext(
        api,
        np.random.default_rng(seed),
        pool=problem["pool"],
        fit=_fit(problem),
        surrogate_torch=problem["surrogate"] in ("mlp", "cnn"),
        batch_size=32,
    )
    transcript, stop = run_registered(name, context, **QUICK.get(name, {}))
    return api, model, (transcript, stop)


@pytest.mark.parametrize(("name", "mode", "modality"), CASES)
def test_budget_api_only_and_determinism(name, mode, modality, problems) -> None:
    problem = problems[modality]
    api, model, (transcript, stop) = _run(name, mode, problem, seed=11)
    assert stop == "finished"
    assert transcript is not None
    assert 0 < api.ledger.used <= BUDGET
    assert len(transcript) == api.ledger.used == api.log.rows_answered
    assert set(api.log.to_frame()["status"]) == {"answered"}  # never refused: never over budget
    assert model.rows == api.ledger.used  # the target answered nothing outside the API
    assert model.leaf_rows == (api.ledger.used if mode == "leaf" else 0)
    again = _run(name, mode, problem, seed=11)[2][0]
    assert inputs_digest(again.queries) == inputs_digest(transcript.queries)
    np.testing.assert_array_equal(again.answers.labels, transcript.answers.labels)
    other = _run(name, mode, problem, seed=12)[2][0]
    assert inputs_digest(other.queries) != inputs_digest(transcript.queries)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_registry_refuses_what_an_attack_cannot_take(name) -> None:
    spec = ATTACKS[name]
    for modality in ("tabular", "image", "text"):
        for mode in OUTPUT_MODES:
            setting = AttackSetting(
                modality=modality,
                output_mode=mode,
                n_classes=2,
                budget=10_000,
                pool_size=10_000,
                surrogate_torch=True,
            )
            if modality in spec.modalities and mode in spec.output_modes:
                continue
            with pytest.raises(InvalidInputError) as info:
                spec.check(setting)
            assert name in str(info.value)
    if spec.pool_per_query:
        small_pool = AttackSetting("tabular", spec.output_modes[0], 2, 100, pool_size=99)
        with pytest.raises(InvalidInputError, match="needs 100 distinct rows"):
            spec.check(small_pool)
    if spec.needs_pool:
        no_pool = AttackSetting("tabular", spec.output_modes[0], 2, 100, pool_size=None)
        with pytest.raises(InvalidInputError, match="pool"):
            spec.check(no_pool)


@pytest.mark.parametrize(("name", "mode", "modality"), CASES)
def test_attacks_spend_what_is_left_not_the_original_budget(name, mode, modality, problems):
    # Someone (an earlier session of the same key) already spent part of the budget: an attack
    # that planned with the API's original budget would be refused by the ledger.
    problem = problems[modality]
    model = CountingModel(problem["target"])
    api = LocalQueryAPI(model, output=mode, budget=BUDGET + 40, input_spec=problem["spec"])
    api.ledger.charge(40)
    context = AttackContext(
        api,
        np.random.default_rng(5),
        pool=problem["pool"],
        fit=_fit(problem),
        surrogate_torch=problem["surrogate"] in ("mlp", "cnn"),
        batch_size=32,
    )
    transcript, stop = run_registered(name, context, **QUICK.get(name, {}))
    assert stop == "finished"
    assert transcript is not None
    assert 0 < len(transcript) == api.ledger.used - 40 <= BUDGET
