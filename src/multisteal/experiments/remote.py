"""An audit of a live prediction service (``multisteal audit --target-url``).

The target is a :mod:`multisteal.service` reached over HTTP with two API keys, read from
environment variables named in the configuration (never stored):

* the **attacker's** key (``api_key_env``): every budget's attack queries the service with it,
  through the service's output policy, defences and detector. The variable may hold one key
  per budget, comma-separated (in the order of the budgets): each attack is then a separate
  attacker, as in an in-process audit, and the service's detector judges each alone; with one
  key the detector sees all budgets' queries as one stream;
* the **auditor's** key (``auditor_key_env``, added with ``multisteal keys add NAME
  --auditor``): the target's full probabilities on the evaluation rows (the reference every
  metric is measured against), on the whole pool for the explorer floor, and the service's
  public answers on the evaluation rows for the honest-user columns.

Before any query, the service's ``/v1/info`` must say the target was trained on this run's
dataset, split and split seed (and take the same inputs and classes): otherwise the evaluation
rows could include rows the target was trained on, and the audit is refused. Both keys'
budgets are checked against what the audit will spend, also before any query.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from multisteal.errors import ConfigError
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData
from multisteal.service.client import HTTPQueryAPI

__all__ = ["RemoteTarget"]

NO_KEY = (
    "The environment variable {env} (the {role}'s API key, from --{option}) is not set or is "
    "empty: export it before running the audit."
)
SAME_KEY = "The attacker's and the auditor's API keys are the same key: each needs its own."
KEYS_PER_BUDGET = (
    "{env} holds {n} comma-separated attacker keys, but the run has {budgets} budgets: give one "
    "key (shared by every budget) or one per budget, in the order of the budgets."
)
REPEATED_KEYS = "{env} holds the same attacker key more than once: each budget needs its own."
NOT_AUDITOR = (
    "The key in {env} is not an auditor's key: the audit needs the target's full probabilities "
    "on the evaluation rows. Add one with multisteal keys add NAME --budget N --auditor."
)
AUDITOR_AS_ATTACKER = (
    "The key in {env} (the attacker's) is an auditor's key: its answers skip the service's "
    "defences and detector, so the attack would not meet what attackers meet. Use an ordinary "
    "key."
)
MISMATCH = (
    "The service at {url} was trained on {field} {remote!r}, but this run's is {here!r}. Its "
    "training rows may be among this run's evaluation rows; run the audit with the data, "
    "--split and --seed the service's target was trained with (its /v1/info 'trained_on')."
)
NOT_PUBLISHED = (
    "The service at {url} does not publish {field} in /v1/info 'trained_on', so this run "
    "cannot check that its evaluation rows are disjoint from the target's training rows."
)
SPEC_MISMATCH = (
    "The service at {url} takes other inputs than this run's data ({what}): it does not serve a "
    "model of this dataset."
)
OUTPUT_MISMATCH = (
    "The service at {url} answers {mode}, but this run's output is {here!r}: set --output "
    "{mode} (the service decides what it reveals)."
)
SHORT_BUDGET = (
    "The {role}'s key has {remaining} rows of budget left, but this audit needs {needed} "
    "({detail}). Add a key with a larger budget (multisteal keys add) or lower the audit's needs."
)


def _key(config: AuditConfig, field: str, role: str, option: str) -> str:
    env = str(getattr(config, field))
    value = os.environ.get(env, "").strip()
    if not value:
        raise ConfigError(NO_KEY.format(env=env, role=role, option=option))
    return value


@dataclass
class RemoteTarget:
    """The two keys of a remote audit and what the service published."""

    url: str
    attacker_keys: dict[int, str]
    auditor_key: str
    info: dict[str, Any]
    batch_size: int
    auditor_remaining: int
    attacker_remaining: dict[str, int]

    @property
    def shared_attacker(self) -> bool:
        """Whether one attacker key serves every budget (one stream for the detector)."""
        return len(set(self.attacker_keys.values())) == 1 and len(self.attacker_keys) > 1

    @classmethod
    def open(cls, config: AuditConfig) -> RemoteTarget:
        """Read the keys from the environment and both keys' view of ``/v1/info``."""
        assert config.target_url is not None
        given = _key(config, "api_key_env", "attacker", "api-key-env")
        keys = [k.strip() for k in given.split(",") if k.strip()]
        budgets = list(config.budgets)
        if len(keys) not in (1, len(budgets)):
            raise ConfigError(
                KEYS_PER_BUDGET.format(env=config.api_key_env, n=len(keys), budgets=len(budgets))
            )
        if len(set(keys)) != len(keys):
            raise ConfigError(REPEATED_KEYS.format(env=config.api_key_env))
        attackers = {b: keys[i] if len(keys) > 1 else keys[0] for i, b in enumerate(budgets)}
        auditor = _key(config, "auditor_key_env", "auditor", "auditor-key-env")
        if auditor in keys:
            raise ConfigError(SAME_KEY)
        with HTTPQueryAPI(config.target_url, auditor) as api:
            if not api.auditor:
                raise ConfigError(NOT_AUDITOR.format(env=config.auditor_key_env))
            auditor_remaining = api.key_ledger.remaining
            info = api.info
        attacker_remaining: dict[str, int] = {}
        for key in keys:
            with HTTPQueryAPI(config.target_url, key) as api:
                if api.auditor:
                    raise ConfigError(AUDITOR_AS_ATTACKER.format(env=config.api_key_env))
                remaining = api.key_ledger.remaining
                assert remaining is not None
                attacker_remaining[key] = remaining
        assert auditor_remaining is not None
        return cls(
            url=config.target_url,
            attacker_keys=attackers,
            auditor_key=auditor,
            info=info,
            batch_size=config.query_batch_size,
            auditor_remaining=auditor_remaining,
            attacker_remaining=attacker_remaining,
        )

    def check(self, config: AuditConfig, data: PreparedData) -> dict[str, Any]:
        """Refuse a service whose target was not trained on this run's split; return what the
        run records about the target."""
        trained = dict(self.info.get("trained_on") or {})
        here = {
            "dataset": config.data_name,
            "split": config.split.model_dump(),
            "split_seed": data.split_seed,
        }
        for field, value in here.items():
            if field not in trained:
                raise ConfigError(NOT_PUBLISHED.format(url=self.url, field=field))
            if trained[field] != value:
                raise ConfigError(
                    MISMATCH.format(url=self.url, field=field, remote=trained[field], here=value)
                )
        if self.info.get("input_spec") != data.input_spec.to_dict():
            raise ConfigError(SPEC_MISMATCH.format(url=self.url, what="its input spec differs"))
        classes = [str(c) for c in data.dataset.class_names]
        if list(self.info.get("classes") or []) != classes:
            raise ConfigError(
                SPEC_MISMATCH.format(
                    url=self.url, what=f"classes {self.info.get('classes')} vs {classes}"
                )
            )
        mode = str(self.info.get("output"))
        if config.answer_mode != mode:
            raise ConfigError(OUTPUT_MISMATCH.format(url=self.url, mode=mode, here=config.output))
        return {"target_url": self.url, "seed": trained.get("seed"), "detect": self.detect}

    @property
    def detect(self) -> str:
        """The service's published detector (``none`` or e.g. ``prada``)."""
        return str(self.info.get("detect", "none"))

    def check_budgets(self, *, auditor: dict[str, int], attacker: dict[int, int]) -> None:
        """Refuse, before any query, an audit the keys' budgets cannot pay for (``auditor``:
        what the rows are for → how many; ``attacker``: budget → rows it will spend)."""
        checks: list[tuple[str, dict[str, int], int]] = [
            ("auditor", auditor, self.auditor_remaining)
        ]
        for key, remaining in self.attacker_remaining.items():
            needs = {
                f"budget {b}": rows for b, rows in attacker.items() if self.attacker_keys[b] == key
            }
            role = (
                "attacker"
                if len(self.attacker_remaining) == 1
                else f"attacker ({', '.join(needs)})"
            )
            checks.append((role, needs, remaining))
        for role, needs, remaining in checks:
            needed = sum(needs.values())
            if needed > remaining:
                detail = ", ".join(f"{what} {rows}" for what, rows in needs.items() if rows)
                raise ConfigError(
                    SHORT_BUDGET.format(
                        role=role, remaining=remaining, needed=needed, detail=detail
                    )
                )

    def auditor(self, budget: int, *, public: bool = False) -> HTTPQueryAPI:
        """The auditor's API, capped at ``budget`` rows: full probabilities, or (``public``)
        the answers every user gets."""
        return HTTPQueryAPI(
            self.url,
            self.auditor_key,
            batch_size=1024,
            budget=budget,
            view="public" if public else "full",
        )

    def attacker(self, budget: int) -> HTTPQueryAPI:
        """The attacker's API for one attack (its budget's key), capped at ``budget`` rows."""
        key = self.attacker_keys[budget]
        return HTTPQueryAPI(self.url, key, batch_size=self.batch_size, budget=budget)
