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

import httpx

from multisteal.errors import AuthenticationError, ConfigError, MultistealError
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData
from multisteal.service.client import HTTPQueryAPI
from multisteal.service.store import hash_key

__all__ = ["RemoteTarget"]

NO_KEY = (
    "The environment variable {env} (the {role}'s API key, from --{option}) is not set or is "
    "empty: export it before running the audit."
)
NO_STATUS = (
    "The service at {url} did not tell the auditor an attacker key's budget and flag "
    "(GET /v1/keys): {detail}. Is it a multisteal service of this version?"
)
FLAGGED_KEY = (
    "The attacker key in {env} ({which}) was already flagged by the service's detector, after "
    "{after} inputs ({used} rows answered): the detector would judge old queries with this "
    "audit's. Use a fresh key (multisteal keys add)."
)
NOT_FRESH = (
    "The attacker key in {env} ({which}) has already had {used} rows answered, and the service "
    "runs a detector that would judge those with this audit's queries. Use a fresh key "
    "(multisteal keys add)."
)
BAD_KEY = "The {role}'s key in {env} was refused: {problem}"
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
POLICY_MISMATCH = (
    "The service at {url} answers {output} with {name}={value}, but this run's {option} is "
    "{here}: set {option} {value} (the service decides what it reveals)."
)
SHORT_BUDGET = (
    "The {role}'s key has {remaining} rows of budget left, but this audit needs {needed} "
    "({detail}). Add a key with a larger budget (multisteal keys add) or lower the audit's needs "
    "(a resumed run repeats an interrupted budget from its first query: give it a fresh key)."
)
BATCH_TOO_LARGE = (
    "--query-batch {batch} exceeds the service's max_batch of {limit}: an attack's batch would "
    "go out as several requests, charged and judged by the detector one by one. Set "
    "--query-batch {limit} or less."
)


FLOOR_NEEDS = "explorer floor (the pool)"


def _client(url: str, key: str, role: str, env: str | None) -> HTTPQueryAPI:
    """An HTTP client for one key; a refused key is named by its role and variable."""
    try:
        return HTTPQueryAPI(url, key)
    except AuthenticationError as exc:
        raise ConfigError(BAD_KEY.format(role=role, env=env, problem=exc)) from None


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
        with _client(config.target_url, auditor, "auditor", config.auditor_key_env) as api:
            if not api.auditor:
                raise ConfigError(NOT_AUDITOR.format(env=config.auditor_key_env))
            auditor_remaining = api.key_ledger.remaining
            info = api.info
        attacker_remaining: dict[str, int] = {}
        for key in keys:
            with _client(config.target_url, key, "attacker", config.api_key_env) as api:
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
        limit = int(self.info.get("max_batch", 0))
        if config.query_batch_size > limit:
            raise ConfigError(BATCH_TOO_LARGE.format(batch=config.query_batch_size, limit=limit))
        mode = str(self.info.get("output"))
        if config.answer_mode != mode:
            raise ConfigError(OUTPUT_MISMATCH.format(url=self.url, mode=mode, here=config.output))
        policy = dict(self.info.get("policy") or {})
        if policy.get("output") == config.output:
            for name, option, ours in (
                ("k", "--top-k", config.top_k),
                ("decimals", "--decimals", config.decimals),
            ):
                if name in policy and policy[name] != ours:
                    raise ConfigError(
                        POLICY_MISMATCH.format(
                            url=self.url,
                            output=config.output,
                            name=name,
                            value=policy[name],
                            option=option,
                            here=ours,
                        )
                    )
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
                detail = ", ".join(f"{what}: {rows}" for what, rows in needs.items() if rows)
                if role == "auditor" and needs.get(FLOOR_NEEDS):
                    detail += f"; --no-explorer-floor saves the pool's {needs[FLOOR_NEEDS]}"
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

    def check_attackers(self, budgets: list[int], env: str | None) -> None:
        """With a detector on the service, every attacker key about to be used must be fresh
        (nothing answered, not flagged): the detector then judges this audit's queries alone,
        and a flag counted from a budget's first query means what it says."""
        if self.detect == "none":
            return
        for key in dict.fromkeys(self.attacker_keys[b] for b in budgets):
            status = self._status(key)
            which = ", ".join(f"budget {b}" for b in budgets if self.attacker_keys[b] == key)
            if status.get("flagged_after") is not None:
                raise ConfigError(
                    FLAGGED_KEY.format(
                        env=env, which=which, after=status["flagged_after"], used=status["used"]
                    )
                )
            if int(status.get("used", 0)):
                raise ConfigError(NOT_FRESH.format(env=env, which=which, used=status["used"]))

    def _status(self, key: str) -> dict[str, Any]:
        """A key's budget and flag, read with the auditor's key (``GET /v1/keys/{sha256}``)."""
        try:
            response = httpx.get(
                f"{self.url}/v1/keys/{hash_key(key)}",
                headers={"Authorization": f"Bearer {self.auditor_key}"},
                timeout=30.0,
            )
        except httpx.TransportError as exc:
            raise MultistealError(NO_STATUS.format(url=self.url, detail=exc)) from None
        if response.status_code != 200:
            raise MultistealError(NO_STATUS.format(url=self.url, detail=response.text[:300]))
        body: dict[str, Any] = response.json()
        return body

    def flagged_after(self, budget: int) -> int | None:
        """The service's flag on the attacker key of ``budget``: the inputs its detector had
        observed when it flagged the key's stream (``None``: not flagged), read with the
        auditor's key (``GET /v1/keys/{sha256}``)."""
        value = self._status(self.attacker_keys[budget]).get("flagged_after")
        return None if value is None else int(value)

    def attacker(self, budget: int) -> HTTPQueryAPI:
        """The attacker's API for one attack (its budget's key), capped at ``budget`` rows."""
        key = self.attacker_keys[budget]
        return HTTPQueryAPI(self.url, key, batch_size=self.batch_size, budget=budget)
