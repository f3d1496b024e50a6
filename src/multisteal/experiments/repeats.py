"""Repeating an audit over seeds, serially or in worker processes, and combining the results."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd

from multisteal.errors import ConfigError
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData
from multisteal.experiments.runner import AuditResult, Checkpoint, Progress, run_single_audit
from multisteal.models import Classifier

__all__ = ["combine_results", "merge_previous", "run_audit"]

REUSE_NEEDS_ONE_SEED = (
    "Prepared data or a fitted target can only be reused by a single-seed audit: every seed "
    "splits the data anew."
)


def combine_results(config: AuditConfig, parts: Sequence[AuditResult]) -> AuditResult:
    """One result from per-seed results (in seed order): frames stacked, arrays prefixed.

    Per-sample arrays become ``seed{s}/…``; the target artifact is the first seed's.
    """
    ordered = sorted(parts, key=lambda part: part.config.seed)

    def stack(name: str) -> pd.DataFrame:
        frames = [getattr(part, name) for part in ordered]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    samples = {
        f"seed{part.config.seed}/{key}": value
        for part in ordered
        for key, value in part.samples.items()
    }
    timings = {
        f"seed{part.config.seed}/{key}": value
        for part in ordered
        for key, value in part.timings.items()
    }
    first = ordered[0]
    return AuditResult(
        config=config,
        results=stack("results"),
        members=stack("members"),
        baselines=stack("baselines"),
        samples=samples,
        query_log=stack("query_log"),
        convergence=stack("convergence"),
        timings=timings,
        target=first.target,
        target_metadata=first.target_metadata,
    )


def merge_previous(previous: AuditResult | None, new: AuditResult) -> AuditResult:
    """One seed's result from an earlier, interrupted run's finished budgets and the new run's.

    The new run recomputed the target, the auditor's view and the baselines (deterministic, so
    identical) and only the missing budgets; rows are ordered by budget as in one run.
    """
    if previous is None or previous.results.empty:
        return new
    done = set(previous.results["budget"])

    def kept(frame: pd.DataFrame, *, attacker_only: bool = False) -> pd.DataFrame:
        if frame.empty or "budget" not in frame:
            return frame.iloc[0:0]
        rows = frame["budget"].isin(done)
        if attacker_only:
            rows &= frame["api"] == "attacker"
        return frame[rows]

    def ordered(old: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
        frame = pd.concat([f for f in (old, fresh) if not f.empty], ignore_index=True)
        if frame.empty:
            return frame
        return frame.sort_values("budget", kind="stable").reset_index(drop=True)

    return AuditResult(
        config=new.config,
        results=ordered(kept(previous.results), new.results),
        members=ordered(kept(previous.members), new.members),
        baselines=new.baselines,
        samples={**previous.samples, **new.samples},
        query_log=ordered(kept(previous.query_log, attacker_only=True), new.query_log),
        convergence=ordered(_stolen(kept(previous.convergence)), new.convergence),
        timings={**previous.timings, **new.timings},
        target=new.target,
        target_metadata=new.target_metadata,
    )


def _stolen(frame: pd.DataFrame) -> pd.DataFrame:
    """The stolen sets' rows of a convergence table (the baselines are recomputed)."""
    if frame.empty or "set" not in frame:
        return frame.iloc[0:0]
    return frame[frame["set"] == "stolen"]


def _finished(previous: AuditResult | None) -> frozenset[int]:
    if previous is None or previous.results.empty:
        return frozenset()
    return frozenset(int(b) for b in previous.results["budget"].unique())


def _complete(previous: AuditResult | None, config: AuditConfig) -> bool:
    """Whether a resumed seed already has every budget and its baselines: nothing to rerun."""
    return (
        previous is not None
        and _finished(previous) >= set(config.budgets)
        and not previous.baselines.empty
    )


def _worker_init(threads: int) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it (workers finish or are
    # cancelled), so a worker neither prints a traceback nor dies mid-seed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def _one_seed(config: AuditConfig, skip: frozenset[int]) -> AuditResult:
    return run_single_audit(config, skip_budgets=skip)


def run_audit(
    config: AuditConfig,
    *,
    data: PreparedData | None = None,
    target: Classifier | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    on_seed: Callable[[int], None] | None = None,
    previous: Mapping[int, AuditResult] | None = None,
) -> AuditResult:
    """Run the audit once per seed of ``config`` and combine the results.

    With ``workers > 1`` and several seeds, seeds run in that many worker processes (each with
    ``threads`` torch/BLAS threads); a seed's results are identical either way. ``checkpoint``
    receives the combined result of everything finished so far: after every budget when
    serial, after every seed in parallel. ``on_seed`` is called with each finished seed.

    ``previous`` holds an interrupted run's results per seed (:func:`read_result`): its
    finished budgets are kept and only the missing ones run.
    """
    previous = previous or {}
    seeds = config.seed_list
    if (data is not None or target is not None) and len(seeds) > 1:
        raise ConfigError(REUSE_NEEDS_ONE_SEED)
    done: list[AuditResult] = []
    workers = min(config.workers, len(seeds))
    if workers <= 1:
        for seed in seeds:
            single = config.for_seed(seed)
            before = previous.get(seed)

            def partial(result: AuditResult, before: AuditResult | None = before) -> None:
                if checkpoint is not None:
                    merged = merge_previous(before, result)
                    checkpoint(combine_results(config, [*done, merged]))

            if before is not None and _complete(before, config):
                done.append(before)  # finished before: nothing to recompute
            else:
                fresh = run_single_audit(
                    single,
                    data=data,
                    target=target,
                    progress=progress,
                    checkpoint=partial,
                    skip_budgets=_finished(before),
                )
                done.append(merge_previous(before, fresh))
            if on_seed is not None:
                on_seed(seed)
        return combine_results(config, done)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(config.threads,),
    ) as pool:
        futures = {}
        for seed in seeds:
            before = previous.get(seed)
            if before is not None and _complete(before, config):
                done.append(before)
                continue
            futures[pool.submit(_one_seed, config.for_seed(seed), _finished(before))] = seed
        try:
            for future in as_completed(futures):
                seed = futures[future]
                done.append(merge_previous(previous.get(seed), future.result()))
                if progress is not None:
                    progress(f"seed {seed} finished")
                if on_seed is not None:
                    on_seed(seed)
                if checkpoint is not None:
                    checkpoint(combine_results(config, done))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # seeds not started are dropped
            raise
    return combine_results(config, done)
