"""Shadow runs for the learned `shadow` attack: checked against the targets, read once, cached.

The attacker's shadow runs share the targets' public config (every key but the public seed, the
engine and the checkpoint cadence, which change no number) and none of their seeds or secrets.
Each shadow secret's features (`attacks.shadow.features`) are computed once per attacker and kept
in the shadow run's own `audit/` folder, so later audits of the same config reuse them (a cache
of an older FEATURES_VERSION, or of a shadow since resumed or edited (`fingerprint`), is
recomputed; an unreadable one is refused); the true
types come from the shadow's ground truth, which the attacker knows because it trained the
shadows itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from asfed import dealer
from asfed.atomic import atomic_write
from asfed.comm import record
from asfed.comm.log import INDEX
from asfed.config import FIELDS, config_value, read_toml
from asfed.csvfile import read_rows
from asfed.errors import AsfedError
from asfed.folders import FolderLock
from attacks import shadow
from attacks.features import rules
from attacks.view import forget_records, load_view, parse_attacker, run_config

FREE_KEYS = {"seed", "engine", "checkpoint_every"}  # may differ between shadow and target
CACHE = "shadow_features_{attacker}.json"


def _private_seed(path: Path) -> int | None:
    """The run's private seed, None where it is not recorded (a run rebuilt from its agents)."""
    if not (path / record.TRUTH / dealer.PRIVATE_SEED).exists():
        return None
    return dealer.read_private_seed(path / record.TRUTH)


def _finished(path: Path) -> None:
    """A shadow must be complete: its answers (ground truth) and every configured round."""
    if not (path / record.TRUTH / "params.npz").exists():
        raise AsfedError(f"shadow {path} has no ground truth (ground_truth/params.npz)")
    rounds = len(read_rows(path / "metrics.csv"))
    wanted = run_config(path).rounds
    if rounds != wanted:
        raise AsfedError(
            f"shadow {path} has {rounds} of its {wanted} rounds; finish it (asfed simulate "
            f"--resume {path}) or leave it out"
        )


def fingerprint(path: Path) -> str:
    """What a shadow's cached features were computed from: its config, its message log's index
    and its logged rounds (a resumed, extended or edited shadow no longer matches)."""
    h = hashlib.sha256()
    for name in ("config.toml", INDEX):
        file = path / name
        h.update(file.read_bytes() if file.exists() else b"")
    h.update(",".join(map(str, record.logged_rounds(path))).encode())
    return h.hexdigest()


def _public_config(path: Path) -> dict:
    values = read_toml(Path(path) / "config.toml")
    return {k: config_value(values, k) for k in sorted(FIELDS.keys() - FREE_KEYS)}


def matching(target: Path, candidates: list[Path], attacker: str = "relay") -> list[Path]:
    """The candidates that are shadows of `target` (its config but for FREE_KEYS), checked; with
    none, the error names how the nearest candidate of its method differs, key by key."""
    mine = _public_config(target)
    found = [c for c in candidates if _public_config(c) == mine]
    if not found:
        same = [c for c in candidates if _public_config(c)["method"] == mine["method"]]
        if not same:
            raise AsfedError(
                f"no shadow of method {mine['method']!r} for target {target} among the "
                f"{len(candidates)} shadow run(s) given"
            )
        check([target], same[:1])  # raises: the key-by-key difference
    check([target], found, attacker)
    return found


def check(targets: list[Path], shadows: list[Path], attacker: str = "relay") -> None:
    """Refuse shadows that differ from a target in any key but FREE_KEYS (named key by key), that
    share a target's seed or private seed, that are unfinished, or that are too few for the
    model (counting the secrets the attacker can attack: a curious neighbour is not its own)."""
    first = read_toml(Path(targets[0]) / "config.toml") if targets else {}
    for s in shadows:
        if not (Path(s) / "config.toml").exists():
            raise AsfedError(f"shadow {s} is not a run folder (no config.toml)")
        values = read_toml(Path(s) / "config.toml")
        keys = (values.keys() | first.keys()) & FIELDS.keys()
        diff = [
            f"{k}: shadow {config_value(values, k)!r} vs target {config_value(first, k)!r}"
            for k in sorted(keys - FREE_KEYS)
            if config_value(values, k) != config_value(first, k)
        ]
        if diff:
            raise AsfedError(f"shadow {s} differs from target {targets[0]}: {'; '.join(diff)}")
    for t in targets:
        cfg, secret = run_config(Path(t)), _private_seed(Path(t))
        for s in shadows:
            if Path(s).resolve() == Path(t).resolve():
                raise AsfedError(f"{t} is both a target and a shadow; give disjoint runs")
            if run_config(Path(s)).seed == cfg.seed:
                raise AsfedError(f"target {t} and shadow {s} share the public seed {cfg.seed}")
            if secret is not None and _private_seed(Path(s)) == secret:
                raise AsfedError(f"target {t} and shadow {s} share their private seed")
    n = int(run_config(Path(shadows[0])).agents or 0) if shadows else 0
    per_run = n - (attacker != "relay")
    if len(shadows) * per_run < shadow.MIN_SECRETS or len(shadows) < 2:
        need = max(2, -(-shadow.MIN_SECRETS // max(per_run, 1)))
        raise AsfedError(
            f"{len(shadows)} shadow run(s) give {len(shadows) * per_run} shadow secrets; the "
            f"shadow model needs at least {shadow.MIN_SECRETS} secrets from at least 2 runs "
            f"({need} runs of {n} agents)"
        )
    for s in shadows:
        _finished(Path(s))


def examples(path: Path, attacker: str) -> tuple[np.ndarray, np.ndarray]:
    """One shadow run's (features `[V, K, F]`, true types `[V]`) over every victim the attacker
    could attack, from its cache or computed and cached."""
    path = Path(path)
    file = path / "audit" / CACHE.format(attacker=attacker.replace(":", "_"))
    if file.exists():
        try:
            data = json.loads(file.read_text())
            current = (
                data["version"] == shadow.FEATURES_VERSION
                and data["columns"] == list(shadow.COLUMNS)
                and data["fingerprint"] == fingerprint(path)
            )
            feats, labels = np.array(data["features"], float), np.array(data["labels"], int)
            if (
                feats.ndim != 3
                or feats.shape[0] != len(labels)
                or feats.shape[2] != len(shadow.COLUMNS)
            ):
                raise ValueError("features and labels do not match")
            if current:
                return feats, labels
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise AsfedError(
                f"cannot read {file}: {err}; remove it and audit again to recompute it"
            ) from None
    cfg = run_config(path)
    n = int(cfg.agents or 0)
    listener = parse_attacker(attacker, n)
    with np.load(path / record.TRUTH / "params.npz") as params:
        weights = params["reward_weights"]
    feats, labels = [], []
    try:
        for j in range(n):
            if j == listener:
                continue
            view = load_view(path, attacker, j)
            feats.append(shadow.features(view))
            labels.append(rules(view.env, view.options).reward_type_of(weights[j]))
    finally:
        forget_records()
    payload = {
        "fingerprint": fingerprint(path),
        "version": shadow.FEATURES_VERSION,
        "attacker": attacker,
        "columns": list(shadow.COLUMNS),
        "features": np.stack(feats).tolist(),
        "labels": labels,
    }
    try:
        with FolderLock(path, "run"):  # one writer per folder: not while the shadow trains
            file.parent.mkdir(exist_ok=True)
            atomic_write(file, json.dumps(payload).encode())
    except OSError as err:
        raise AsfedError(f"cannot cache shadow features in {file}: {err}") from None
    return np.stack(feats), np.array(labels)


def learn(shadows: list[Path], attacker: str) -> tuple[shadow.ShadowModel, shadow.ShadowModel]:
    """The shadow attack's two models (messages, actions only), fitted on every shadow secret."""
    parts = [examples(s, attacker) for s in shadows]
    feats = np.concatenate([f for f, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    return shadow.fit(feats, labels, shadow.MESSAGES), shadow.fit(feats, labels, shadow.ACTIONS)
