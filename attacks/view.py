"""An attacker's view: the messages it received from its victim, the public records, the rules.

This object is all an attack is handed (the threat model of DESIGN.md section 5, kept in code):
the messages the attacker saw from the victim (the relay sees everything the victim sent; a
curious neighbour `agent:K` sees what the victim sent to K), the public record of every logged
round (states, joint actions, episode ends), and public facts (the env's rules and options, the
method and its network sizes from the run's config). It holds no ground truth, no checkpoint, no
metrics: `load_view` reads only `config.toml`, the message log and `public/`.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

from asfed.comm import record
from asfed.comm.log import INDEX, read_index, read_log
from asfed.comm.messages import Message
from asfed.comm.record import PublicRecord
from asfed.config import RunConfig, check_types, read_toml
from asfed.errors import AsfedError

ATTACKERS_HELP = "relay, or agent:K (a curious neighbour K)"


@dataclasses.dataclass(frozen=True)
class AttackerView:
    """What attacker `attacker` saw of victim `victim` in one run.

    env: the env's name; options: its public options (`RunConfig.env_options`: agents, horizon,
    zap and private_weights, predation's action_frame);
    method: the run's method; hidden: the actor and critic hidden sizes; gamma: its discount
    (public: the config);
    messages: what the attacker received from the victim, in log order;
    records: round -> that round's `PublicRecord`;
    inbox: for the relay, the parameters the victim received (PS, VPS), so the consensus part
    of its updates can be removed; degrees: (round, step, agent) -> how many agents that agent
    sent parameters to (the relay routed them all; Metropolis weights follow from them).
    """

    attacker: str
    victim: int
    env: str
    options: dict[str, Any]
    method: str
    hidden: dict[str, tuple[int, ...]]
    messages: tuple[Message, ...]
    records: dict[int, PublicRecord]
    gamma: float = 0.99  # the run's discount (public: the config)
    inbox: tuple[Message, ...] = ()
    degrees: dict[tuple[int, int, int], int] = dataclasses.field(default_factory=dict)
    # What is derived from the view once and read by several attacks (`channels.evidence`):
    # the view never changes, so neither does what follows from it.
    derived: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def num_agents(self) -> int:
        return int(self.options["num_agents"])


def parse_attacker(text: str, num_agents: int) -> int | None:
    """`relay` -> None; `agent:K` -> K (checked against the run's agents)."""
    if text == "relay":
        return None
    head, _, tail = text.partition(":")
    if head == "agent" and tail.isdigit() and int(tail) < num_agents:
        return int(tail)
    raise AsfedError(
        f"attacker {text!r} is invalid; accepted: relay or agent:K with K in 0..{num_agents - 1}"
    )


def run_config(path: Path) -> RunConfig:
    """A run folder's (public) config, with a clear error if the folder is not a run."""
    path = Path(path)
    if not (path / "config.toml").exists():
        raise AsfedError(f"{path} is not a run folder (no config.toml)")
    values = read_toml(path / "config.toml")
    check_types(values, str(path / "config.toml"))
    return RunConfig(**values)


def load_view(path: Path, attacker: str, victim: int) -> AttackerView:
    """The view of `attacker` on `victim` in the run at `path` (public files only)."""
    path = Path(path)
    cfg = run_config(path)
    n = int(cfg.agents or 0)
    if not 0 <= victim < n:
        raise AsfedError(f"victim {victim} does not exist; accepted: 0..{n - 1} ({path})")
    listener = parse_attacker(attacker, n)
    if listener == victim:
        raise AsfedError(f"agent {victim} cannot attack itself; choose another attacker")
    rounds = record.logged_rounds(path)
    if not rounds or not (path / INDEX).exists():
        raise AsfedError(
            f"{path} has no public record (recorded before asfed kept one, or no round was "
            "logged); re-run it to audit it"
        )
    try:
        logged = {int(r) for r in read_index(path)["round"]}
        missing = sorted(logged - set(rounds))
        if missing:
            raise AsfedError(
                f"{path}: round {missing[0]} is in the message log but its public record "
                f"{record.PUBLIC}/{record.round_file(missing[0])} is missing; the run folder is "
                "damaged (an audit never skips a logged round)"
            )
        records = _public_records(path, rounds)
        messages, inbox, degrees = _read_messages(path, records, victim, listener)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise AsfedError(f"cannot read the message log or public record of {path}: {err}") from None
    for m in messages:
        rows = records[m.round].num_rows
        if m.rows is not None and len(m.rows) and int(m.rows.max()) >= rows:
            raise AsfedError(f"{path}: a message of round {m.round} points past its record")
    ppo = cfg.ppo()
    options = cfg.env_options()  # the run's rules: agents, horizon and each env's own options
    return AttackerView(
        attacker=attacker,
        victim=victim,
        env=cfg.env,
        options=options,
        method=cfg.method,
        hidden={"actor": ppo.actor_hidden, "critic": ppo.critic_hidden},
        messages=messages,
        records=records,
        gamma=ppo.gamma,
        inbox=inbox,
        degrees=degrees,
    )


PARAM_KINDS = ("policy_params", "value_params")

# The last run's public records, so the views of its victims share record objects and with
# them the counterfactual features computed from them (`attacks.rounds`), which every victim
# of a run reads: (path, each round file's (name, inode, mtime, ctime, size)) -> records,
# until `forget_records`.
_LAST_RECORDS: dict[tuple, dict[int, PublicRecord]] = {}


def _public_records(path: Path, rounds: list[int]) -> dict[int, PublicRecord]:
    """The run's public records by round, shared with the previous view of the same run while
    its files are unchanged (one run at a time is kept)."""
    files = [path / record.PUBLIC / record.round_file(r) for r in rounds]
    key = (str(path.resolve()), *((f.name, *_stamp(f)) for f in files))
    if key not in _LAST_RECORDS:
        _LAST_RECORDS.clear()
        records = {r: record.read_public(path, r) for r in rounds}
        for rec in records.values():  # shared between views: nobody may change them
            for array in (rec.obs, rec.actions, rec.terminated, rec.valid, *rec.states.values()):
                array.setflags(write=False)
        _LAST_RECORDS[key] = records
    return _LAST_RECORDS[key]


def _stamp(file: Path) -> tuple[int, ...]:
    st = file.stat()  # a rewrite (atomic: a new inode) changes it even within a clock tick
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def forget_records() -> None:
    """Drop the shared records, and with them their features (a 300-round exchange run's are
    gigabytes): called when every victim of a run has been attacked."""
    _LAST_RECORDS.clear()


def _read_messages(
    path: Path, records: dict[int, PublicRecord], victim: int, listener: int | None
) -> tuple[tuple[Message, ...], tuple[Message, ...], dict[tuple[int, int, int], int]]:
    """One pass over the log: what the attacker received from the victim, and, for the relay,
    the parameters sent to the victim and every sender's parameter fan-out per (round, step)."""
    mine, inbox = [], []
    fan: dict[tuple[int, int, int], set[int]] = {}
    for m in read_log(path):
        if m.round not in records:
            continue
        if m.sender == victim and (listener is None or m.receiver == listener):
            mine.append(m)
        if listener is None and m.kind in PARAM_KINDS:
            fan.setdefault((m.round, m.step, m.sender), set()).add(m.receiver)
            if m.receiver == victim:
                inbox.append(m)
    return tuple(mine), tuple(inbox), {k: len(v) for k, v in fan.items()}
