"""Fidelity and wall time of our Knockoff (random) and Copycat-style attacks against ART's.

Run with (not part of the tests; ART is an optional benchmark dependency)::

    .venv/bin/pip install -e '.[bench-art]'
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_art.py [--seeds 0 1 2] [--budgets 500 2000]

Without the adversarial-robustness-toolbox (ART) installed it prints how to install it and
exits 0.

Setting (PyPI ``adversarial-robustness-toolbox==1.20.1``, CPU, ``--threads`` torch threads):

* Data: PneumoniaMNIST (bundled, 28x28 grey images in 0..255). The target is trained on a
  seeded half of the official train part (epochs selected on the official val part); the
  other half is the attacker's pool; fidelity is the label agreement of the stolen surrogate
  with the target on the official test part (624 images). One target (``--target-seed``)
  serves every attack; the seeds vary the attacks' sampling and the surrogates' weights.
* Target: ``make_pipeline("cnn", ...)`` — :class:`~multisteal.models.ImageEncoder` (raw pixels
  standardised with the training images' mean and standard deviation) and
  :class:`~multisteal.models.cnn.TorchCNNClassifier`. For ART the same fitted module is wrapped
  as a ``PyTorchClassifier`` taking raw images ``(n, 1, 28, 28)`` with ``preprocessing=(mean,
  std)`` of our encoder and a final ``Softmax`` (ART's ``PyTorchClassifier.predict`` returns
  the module's outputs, which would be logits; KnockoffNets with ``use_probability=True``
  trains on those outputs as given). The script asserts that ART's victim and our target
  predict the same label on every test image before anything is timed.
* Knockoff (random strategy, Orekondy et al. 2019), probabilities answered. Ours:
  ``knockoff-random`` through :class:`~multisteal.query.LocalQueryAPI` (``output=
  "probabilities"``) and ``fit_surrogate`` on the soft answers. (The ``pool`` attack, which
  samples identically, is used when ``knockoff-random`` is not registered; the script says
  which ran.) ART: ``KnockoffNets(sampling_strategy="random", use_probability=True)``; with a
  ``CrossEntropyLoss`` ART's ``PyTorchClassifier.fit`` keeps non-one-hot targets as class
  probabilities, so both train on the soft answers.
* Copycat-style (Correia-Silva et al. 2018), labels only. Ours: the same sampling with
  ``output="label"`` and ``fit_surrogate`` on the hard labels. ART: ``CopycatCNN(
  use_probability=False)`` (argmax of the victim's answers, one-hot, reduced to indices).
* Surrogate: the same family and training settings on both sides — ``small_cnn`` (conv 16-32,
  dense 64) with the same seeded initial weights (our classifier draws them from
  ``torch.Generator().manual_seed(seed)``; ART's thieved module is built by ``small_cnn`` from
  the same generator), Adam (lr 3e-3, weight decay 1e-4), batches of 128, cross-entropy, and
  the same number of epochs: ours trains ``max(epochs, ceil(min_steps / steps per epoch))``
  epochs (20 epochs, at least 300 steps; no validation set, so no epoch selection: the last
  epoch is kept), and ART's ``nb_epochs`` is set to that number.
* Time: end to end per attack (building the API / thieved classifier, querying and training
  the surrogate), as wall-clock seconds and as the CPU seconds of all the process's threads
  (``time.process_time``), which other work sharing the machine disturbs less (the load
  average printed before and after tells whether there was any); the target's training and
  the ART victim's wrapping are not timed.

Where the two sides still differ:

* Sampling: both draw ``budget`` distinct pool images uniformly, ours from the seeded
  ``numpy.random.Generator`` of the attack context, ART from ``numpy.random`` (seeded with the
  same seed), so they query different images.
* Standardisation of the surrogate's inputs: our surrogate's encoder is fitted on its
  transcript's queries (attacker-side data only); ART's thieved classifier gets a fixed
  ``preprocessing=(mean, std)``, here those of the attacker's whole pool (ART samples inside
  ``extract``, so the queries are not known beforehand).
* Shuffling: ours from the surrogate's private generator, ART's ``DataLoader`` from torch's
  global generator (seeded with the seed).
* Querying: our API validates every batch against the published input spec, keeps a ledger
  and a query log; ART calls the module directly (batches of 256 on both sides).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from multisteal.attacks import ATTACKS, AttackContext, run_registered
from multisteal.data import load_dataset
from multisteal.data.inputs import input_spec_of
from multisteal.models.cnn import small_cnn
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI
from multisteal.surrogates import fit_surrogate, make_surrogate

DATASET = "pneumoniamnist"
N_CLASSES = 2
QUERY_BATCH = 256
NO_ART = (
    "bench_art.py needs the adversarial-robustness-toolbox (ART), an optional benchmark "
    "dependency: .venv/bin/pip install -e '.[bench-art]' (or "
    "adversarial-robustness-toolbox==1.20.1). Nothing was run."
)
METHODS = ("ours knockoff", "ART KnockoffNets", "ours copycat", "ART CopycatCNN")
PAIRS = (("ours knockoff", "ART KnockoffNets"), ("ours copycat", "ART CopycatCNN"))


def setup(target_seed: int) -> dict[str, Any]:
    """The target (trained on half of the official train part), the pool and the test part."""
    dataset = load_dataset(DATASET)
    parts = dataset.parts
    assert parts is not None
    train = parts["train"]
    order = np.random.default_rng(target_seed).permutation(len(train))
    owner, pool = np.sort(train[order[: len(train) // 2]]), np.sort(train[order[len(train) // 2 :]])
    spec = input_spec_of(dataset)
    images, y = dataset.images, dataset.y
    target = make_pipeline("cnn", spec, n_classes=N_CLASSES, random_state=target_seed)
    target.fit(images[owner], y[owner], validation=(images[parts["val"]], y[parts["val"]]))
    X_test, y_test = images[parts["test"]], y[parts["test"]]
    return {
        "spec": spec,
        "target": target,
        "pool": images[pool],
        "X_test": X_test,
        "y_test": y_test,
        "target_test": target.predict(X_test),
        "n_owner": len(owner),
    }


def surrogate_settings(spec: Any) -> dict[str, Any]:
    """Our CNN surrogate's training settings (what ``fit_surrogate`` uses for ``cnn``)."""
    params = make_surrogate("cnn", n_classes=N_CLASSES, input_spec=spec).model.get_params()
    keys = ("epochs", "batch_size", "lr", "weight_decay", "min_steps", "channels", "hidden")
    return {k: params[k] for k in keys}


def epochs_trained(budget: int, settings: dict[str, Any]) -> int:
    """The epochs our training loop runs on ``budget`` rows (``min_steps`` may add some)."""
    steps = math.ceil(budget / min(settings["batch_size"], budget))
    return max(int(settings["epochs"]), math.ceil(int(settings["min_steps"]) / steps))


def as_art_images(images: np.ndarray) -> np.ndarray:
    """Raw (n, 28, 28) images as ART takes them: float32 (n, 1, 28, 28), values unchanged."""
    return np.ascontiguousarray(images[:, None], dtype=np.float32)


def art_victim(target: Any) -> Any:
    """Our fitted target as an ART classifier on raw images, answering probabilities."""
    from art.estimators.classification import PyTorchClassifier

    encoder = target.encoder_
    return PyTorchClassifier(
        model=torch.nn.Sequential(target.model_.module_, torch.nn.Softmax(dim=1)),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=N_CLASSES,
        preprocessing=(float(encoder.mean_[0]), float(encoder.scale_[0])),
    )


def run_ours(
    setting: dict[str, Any], attack: str, *, output: str, budget: int, seed: int
) -> tuple[float, float, float]:
    """(fidelity, wall seconds, CPU seconds) of our attack and surrogate."""
    spec = setting["spec"]
    start, cpu = time.perf_counter(), time.process_time()
    api = LocalQueryAPI(setting["target"], output=output, budget=budget, input_spec=spec)
    context = AttackContext(
        api, np.random.default_rng(seed), pool=setting["pool"], batch_size=QUERY_BATCH
    )
    transcript, stop = run_registered(attack, context)
    assert transcript is not None
    assert stop == "finished"
    assert len(transcript) == budget
    surrogate = fit_surrogate(transcript, architecture="cnn", input_spec=spec, random_state=seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    fidelity = float(np.mean(surrogate.predict(setting["X_test"]) == setting["target_test"]))
    return fidelity, seconds, cpu


def run_art(
    setting: dict[str, Any], victim: Any, method: str, *, budget: int, seed: int
) -> tuple[float, float, float]:
    """(fidelity, wall seconds, CPU seconds) of ART's attack and its thieved classifier."""
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    settings = setting["surrogate"]
    pool = setting["art_pool"]
    np.random.seed(seed)  # noqa: NPY002 - ART samples its queries from numpy's global state
    torch.manual_seed(seed)
    start, cpu = time.perf_counter(), time.process_time()
    module = small_cnn(
        (1, 28, 28),
        N_CLASSES,
        torch.Generator().manual_seed(seed),
        channels=settings["channels"],
        hidden=settings["hidden"],
    )
    thieved = PyTorchClassifier(
        model=module,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(
            module.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"]
        ),
        input_shape=(1, 28, 28),
        nb_classes=N_CLASSES,
        preprocessing=setting["pool_stats"],
    )
    common = {
        "batch_size_fit": int(settings["batch_size"]),
        "batch_size_query": QUERY_BATCH,
        "nb_epochs": epochs_trained(budget, settings),
        "nb_stolen": budget,
    }
    if method == "ART KnockoffNets":
        attack = KnockoffNets(
            victim, sampling_strategy="random", use_probability=True, verbose=False, **common
        )
    else:
        attack = CopycatCNN(victim, use_probability=False, **common)
    stolen = attack.extract(pool, thieved_classifier=thieved)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    predicted = np.argmax(stolen.predict(setting["art_test"]), axis=1)
    return float(np.mean(predicted == setting["target_test"])), seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=int, default=[500, 2000])
    parser.add_argument("--target-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if importlib.util.find_spec("art") is None:
        print(NO_ART)
        sys.exit(0)
    import art

    torch.set_num_threads(args.threads)
    attack = "knockoff-random" if "knockoff-random" in ATTACKS else "pool"
    print(
        f"ART {art.__version__}, torch {torch.__version__}, {args.threads} threads "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); our sampling: "
        f"the {attack!r} attack"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    setting = setup(args.target_seed)
    victim = art_victim(setting["target"])
    setting["art_pool"] = as_art_images(setting["pool"])
    setting["art_test"] = as_art_images(setting["X_test"])
    pool_values = setting["art_pool"].astype(np.float64)
    setting["pool_stats"] = (float(pool_values.mean()), float(pool_values.std()))
    art_test = np.argmax(victim.predict(setting["art_test"], batch_size=QUERY_BATCH), axis=1)
    agree = float(np.mean(art_test == setting["target_test"]))
    assert agree == 1.0, f"ART's victim agrees with our target on {agree:.4f} of the test images"
    accuracy = float(np.mean(setting["target_test"] == setting["y_test"]))
    settings = setting["surrogate"] = surrogate_settings(setting["spec"])
    print(
        f"{DATASET}: target cnn on {setting['n_owner']} images, pool {len(setting['pool'])} images, "
        f"test accuracy {accuracy:.3f} on {len(setting['y_test'])} test images; ART victim "
        f"agrees with it on {agree:.3f} of them"
    )
    print(f"surrogate cnn {settings} on both sides")
    header = ("method", "budget", "seed", "epochs", "fid", "wall s", "cpu s")
    print("{:<18}{:>7}{:>6}{:>7}{:>8}{:>8}{:>8}".format(*header))
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for budget in args.budgets:
        for seed in args.seeds:
            for method in METHODS:
                if method == "ours knockoff":
                    row = run_ours(
                        setting, attack, output="probabilities", budget=budget, seed=seed
                    )
                elif method == "ours copycat":
                    row = run_ours(setting, attack, output="label", budget=budget, seed=seed)
                else:
                    row = run_art(setting, victim, method, budget=budget, seed=seed)
                results.setdefault((method, budget), []).append(row)
                print(
                    f"{method:<18}{budget:>7}{seed:>6}{epochs_trained(budget, settings):>7}"
                    f"{row[0]:>8.3f}{row[1]:>8.1f}{row[2]:>8.1f}",
                    flush=True,
                )
    print()
    print(
        f"means over seeds {args.seeds}; fidelity = label agreement with the target on the "
        "test part (mean ± sd); ratios = ours / ART of the means"
    )
    header = ("method", "budget", "fidelity", "wall s", "cpu s", "fid", "wall", "cpu")
    print("{:<18}{:>7}{:>16}{:>8}{:>8}{:>8}{:>8}{:>8}".format(*header))
    for budget in args.budgets:
        for ours, theirs in PAIRS:
            mine, art_means = (np.array(results[(m, budget)]) for m in (ours, theirs))
            for method, rows in ((ours, mine), (theirs, art_means)):
                means = rows.mean(axis=0)
                ratios = ""
                if method == ours:
                    ratio = mine.mean(axis=0) / art_means.mean(axis=0)
                    ratios = f"{ratio[0]:>8.3f}{ratio[1]:>8.2f}{ratio[2]:>8.2f}"
                fidelity = f"{means[0]:.3f} ± {rows[:, 0].std():.3f}"
                print(
                    f"{method:<18}{budget:>7}{fidelity:>16}{means[1]:>8.1f}{means[2]:>8.1f}{ratios}"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
