"""Differential privacy on what agents share: calibrated Gaussian noise where a message leaves
its sender, and the accounting of every release.

Adjacency: reward-level replace (agent j's reward function replaced by any other). Every message
j sends may depend on its whole reward, so every release counts, with sample rate 1.

Mechanisms (applied by the agent to its own outgoing messages, so the log holds exactly what was
released):
- distributions (`policy_dist`, `anticipation`, R rows): two probability rows differ by at most
  sqrt(2) in L2, so the message's L2 sensitivity is sqrt(2R); add N(0, (sigma sqrt(2R))^2) to
  every entry, then project each row back onto the simplex (Duchi et al. 2008's sort-based
  Euclidean projection; post-processing);
- VS's values (`values`, one advantage per row): clip the vector to L2 norm C, so two releases
  differ by at most 2C under replace adjacency; add N(0, (2 C sigma)^2) per entry;
- parameters (`value_params`, `policy_params`), as DP-FedAvg clips updates rather than models:
  the agent releases theta_t' = theta_{t-1}' + clip_C(theta_t - theta_{t-1}') + N(0, (2 C sigma)^2)
  (`release_update`), the previous release theta_{t-1}' being public to its receivers; its first
  release is its initial parameters, data-independent and so free, when it shares before any
  update (else the reference is 0). One release per sharing step and kind, sent to every
  neighbour; the accountant still counts one step per message (an over-count: conservative).
Flower's DP wrappers (`DifferentialPrivacy*Clipping`, `LocalDpMod`) clip an update relative to
what a server sent and average it (FedAvg); they fit neither peer-to-peer distributions nor
consensus, and `LocalDpMod` does not compose across rounds, so the mechanism is written here
(a few lines) and the accounting uses Opacus.

Accounting (`ReleaseAccountant`): a Gaussian release with noise multiplier sigma is
(1/sigma)-GDP and T releases compose exactly to mu = sqrt(T) / sigma at sample rate 1 (Dong, Roth,
Su 2022); epsilon at delta comes from Opacus' `analysis.gdp.eps_from_mu`. This exact accountant
is what asfed reports (PRIVACY-FACTS: Opacus' RDP is valid but loose here, PRV agrees but is slow
and noisy at q = 1, and `GaussianAccountant` is wrong at q = 1); `rdp_epsilon` is the
cross-check. `calibrate_sigma` inverts the exact accountant for a target epsilon (Opacus'
`get_noise_multiplier` with PRV agrees within about 1.5%; a test checks it).

What DP covers: the messages. The public trajectory (states and joint actions every agent sees,
which depend on the policies and so on the rewards) is not covered: every place that prints
epsilon says so.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import optimize, special

from asfed.comm.messages import Message
from asfed.errors import AsfedError

NOT_COVERED = "messages only: the public trajectory (states, actions) is not covered"
DISTRIBUTION_KINDS = frozenset({"policy_dist", "anticipation"})
PARAM_KINDS = frozenset({"value_params", "policy_params"})


@dataclasses.dataclass(frozen=True)
class DPSettings:
    """sigma: the noise multiplier; clip: C for vectors; delta: for reporting epsilon."""

    sigma: float
    clip: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if not self.sigma > 0 or not math.isfinite(self.sigma):
            raise AsfedError(f"dp sigma={self.sigma} is invalid; accepted: a number > 0")
        if not self.clip > 0:
            raise AsfedError(f"dp clip={self.clip} is invalid; accepted: a number > 0")
        check_delta(self.delta)


def check_delta(delta: float) -> None:
    if not 0 < delta < 1:
        raise AsfedError(f"dp delta={delta} is invalid; accepted: 0 < delta < 1")


def project_simplex(rows: np.ndarray) -> np.ndarray:
    """The Euclidean projection of each row `[R, A]` onto the probability simplex (Duchi et al.
    2008: sort, find the threshold, clip)."""
    v = np.asarray(rows, dtype=np.float64)
    a = v.shape[-1]
    u = -np.sort(-v, axis=-1)
    css = np.cumsum(u, axis=-1) - 1.0
    k = np.arange(1, a + 1)
    cond = u - css / k > 0
    rho = a - 1 - np.argmax(cond[..., ::-1], axis=-1)  # last index where cond holds
    theta = np.take_along_axis(css, rho[..., None], -1) / (rho[..., None] + 1)
    return np.maximum(v - theta, 0.0)


def gaussian_release(
    kind: str, payload: np.ndarray, dp: DPSettings, rng: np.random.Generator
) -> np.ndarray:
    """The Gaussian mechanism itself, before any post-processing: a distribution message `[R, A]`
    plus N(0, (sigma sqrt(2R))^2) per entry; a values vector clipped to C plus N(0, (2 C
    sigma)^2). What `audits.dp_check` audits (post-processing cannot make it less private)."""
    x = np.asarray(payload, np.float64)
    if kind in DISTRIBUTION_KINDS:
        std = dp.sigma * math.sqrt(2 * max(len(x), 1))
        return x + rng.normal(0.0, std, x.shape)
    if kind == "values":
        norm = float(np.linalg.norm(x))
        clipped = x * min(1.0, dp.clip / norm) if norm > 0 else x
        return clipped + rng.normal(0.0, 2 * dp.clip * dp.sigma, x.shape)
    raise AsfedError(f"no per-message DP mechanism for {kind!r} messages")


def release(msg: Message, dp: DPSettings, rng: np.random.Generator) -> Message:
    """The noised message, as it leaves its sender (distributions projected back onto the
    simplex: post-processing)."""
    noised = gaussian_release(msg.kind, msg.payload, dp, rng)
    if msg.kind in DISTRIBUTION_KINDS:
        noised = project_simplex(noised)
    return dataclasses.replace(msg, payload=noised.astype(np.float32), nbytes=-1)


def _delta(eps: float, mu: float) -> float:
    """delta(eps) of mu-GDP, Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2), in log space (the
    same closed form as Opacus' `gdp.delta_eps_mu`, without its overflow at large eps)."""
    a = special.log_ndtr(-eps / mu + mu / 2)
    b = eps + special.log_ndtr(-eps / mu - mu / 2)
    return float(np.exp(a) - np.exp(b)) if a > b else 0.0


def release_update(
    x: np.ndarray, reference: np.ndarray, dp: DPSettings, rng: np.random.Generator
) -> np.ndarray:
    """The next released parameter vector: the last release plus the clipped, noised update."""
    step = np.asarray(x, np.float64) - reference
    norm = float(np.linalg.norm(step))
    clipped = step * min(1.0, dp.clip / norm) if norm > 0 else step
    return reference + clipped + rng.normal(0.0, 2 * dp.clip * dp.sigma, step.shape)


def epsilon_from_mu(mu: float, delta: float) -> float:
    """Epsilon at delta of a mu-GDP mechanism (exact). Opacus' `gdp.eps_from_mu` where its
    bracket [0, 500] holds the answer, else the same root found on a wider bracket."""
    if mu <= 0 or _delta(0.0, mu) <= delta:
        return 0.0
    if not math.isfinite(mu):
        return math.inf
    from opacus.accountants.analysis import gdp

    with np.errstate(all="ignore"):
        if _delta(500.0, mu) < delta:
            return float(gdp.eps_from_mu(mu=mu, delta=delta))
    hi = 1000.0
    while _delta(hi, mu) > delta:
        hi *= 2
    return float(optimize.brentq(lambda e: _delta(e, mu) - delta, 0.0, hi))


def calibrate_sigma(target_epsilon: float, delta: float, releases: int) -> float:
    """The noise multiplier that makes `releases` Gaussian releases (target_epsilon, delta)-DP
    under the exact accountant."""
    if not target_epsilon > 0:
        raise AsfedError(f"dp epsilon={target_epsilon} is invalid; accepted: a number > 0")
    check_delta(delta)
    hi = 1.0
    while epsilon_from_mu(hi, delta) < target_epsilon:
        hi *= 2
    mu = optimize.brentq(lambda m: epsilon_from_mu(m, delta) - target_epsilon, 1e-9, hi)
    return math.sqrt(max(releases, 1)) / mu


class ReleaseAccountant:
    """Counts each agent's releases (all at one noise multiplier) and converts to epsilon over
    every release: the guarantee, against the relay and against anyone else. `pair_epsilon`
    counts only the releases one agent sent directly to one receiver: a descriptive number, not
    a bound on what that neighbour can infer, since its other neighbours' messages carry what
    they learned from the victim's other releases onward (adaptive composition counts them all)."""

    def __init__(self, num_agents: int, sigma: float, delta: float) -> None:
        self.sigma, self.delta = sigma, delta
        self.releases = np.zeros(num_agents, np.int64)
        self.pairs: np.ndarray | None = np.zeros((num_agents, num_agents), np.int64)

    def add(self, per_agent: np.ndarray, per_pair: np.ndarray | None = None) -> None:
        """per_agent `[N]` releases; per_pair `[N, N]` (sender, receiver) releases."""
        self.releases += np.asarray(per_agent, np.int64)
        if self.pairs is not None and per_pair is not None:
            self.pairs += np.asarray(per_pair, np.int64)

    def pair_epsilon(self) -> float:
        """Epsilon over the most releases any one sender sent directly to any one receiver (NaN
        where a run was checkpointed before pairs were counted); not a bound (see the class)."""
        if self.pairs is None:
            return math.nan
        return epsilon_from_mu(math.sqrt(int(self.pairs.max())) / self.sigma, self.delta)

    def mu(self) -> np.ndarray:
        return np.sqrt(self.releases) / self.sigma

    def epsilons(self) -> np.ndarray:
        """Each agent's epsilon at `delta` so far, `[N]` (exact GDP composition)."""
        return np.array([epsilon_from_mu(float(m), self.delta) for m in self.mu()])

    def rdp_epsilon(self, agent: int) -> float:
        """Opacus' RDP accountant on the same releases (a looser cross-check)."""
        from opacus.accountants import RDPAccountant

        acc = RDPAccountant()
        acc.history = [(self.sigma, 1.0, int(self.releases[agent]))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(acc.get_epsilon(self.delta))

    def state_dict(self) -> dict:
        pairs = None if self.pairs is None else self.pairs.tolist()
        return {"releases": self.releases.tolist(), "pairs": pairs}

    def load_state_dict(self, state: dict) -> None:
        self.releases = np.asarray(state["releases"], np.int64)
        pairs = state.get("pairs")  # absent in checkpoints written before pairs were counted
        self.pairs = None if pairs is None else np.asarray(pairs, np.int64)
