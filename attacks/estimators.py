"""The estimators the attacks share: soft-optimal preferences regressed on reward features.

Soft optimality ties a shared distribution to the sender's advantage, tau log pi(a|s) = A(s, a)
(PRIVACY-FACTS; IQ-Learn's inverse soft Bellman), and a linear reward r = Phi . w. Within a state,
centring over actions removes V(s); what remains of A(s, a) beyond the immediate reward is
gamma E[V(s')], which the one-step model treats as noise (a myopic estimator: it reads the
immediate reward's share of the preferences; the cheap baseline, not a bound on what stronger
attacks, `attacks.update` and `attacks.shadow`, find).

- preferences `[R, A]` on features `[R, A, D]`: centred least squares (`NormalEquations`) or a
  non-negative scale along a candidate's weights (`DirectionStats`, reward type);
- taken values `[R]` on features `[R, D]`: least squares with an intercept, or correlation;
- observed actions `[R]` (the actions-only attacker): a conditional logit fitted by maximum
  likelihood (behavioural cloning in the same model family).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

EPISODE = 1_000_000  # episode key = round * EPISODE + copy index b


def centre(x: np.ndarray) -> np.ndarray:
    """Subtract the mean over actions (axis 1)."""
    return x - x.mean(1, keepdims=True)


class DirectionStats:
    """How much of the evidence a reward along one candidate's weights explains, per episode
    and over the run, from running sums (the evidence streams round by round).

    Preferences `y [R, A]` against `x = Phi . w` `[R, A]`, both centred over actions: a
    non-negative scale beta = max(0, <x, y> / <x, x>), and R^2 = 1 - |y - beta x|^2 / |y|^2.
    Taken values `y [R]` against `x [R]`: the squared positive part of their correlation. A score
    averages the two forms, weighted by their row counts: a fraction in [0, 1].
    """

    def __init__(self, episodes: np.ndarray) -> None:
        self.episodes = np.asarray(episodes, dtype=np.int64)  # ascending (np.unique)
        if np.any(np.diff(self.episodes) <= 0):
            raise ValueError("episode keys must be strictly ascending")
        e = len(episodes)
        self.p = np.zeros((4, e))  # rows, xy, xx, yy
        self.t = np.zeros((6, e))  # n, sx, sy, sxy, sxx, syy

    def _idx(self, keys: np.ndarray) -> np.ndarray:
        """Each key's position among the episodes `[R]`; a key not among them is an error."""
        keys = np.asarray(keys, dtype=np.int64)
        idx = np.searchsorted(self.episodes, keys)
        if len(keys) and (idx.max() >= len(self.episodes) or (self.episodes[idx] != keys).any()):
            raise KeyError(f"episode keys not in this run's episodes: {keys[:5]}...")
        return idx

    def add_prefs(self, keys: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        x, y, idx = centre(x), centre(y), self._idx(keys)
        e = self.p.shape[1]
        for i, v in enumerate((np.ones(len(x)), (x * y).sum(1), (x * x).sum(1), (y * y).sum(1))):
            self.p[i] += np.bincount(idx, v, minlength=e)

    def add_taken(self, keys: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        idx, e = self._idx(keys), self.t.shape[1]
        for i, v in enumerate((np.ones(len(x)), x, y, x * y, x * x, y * y)):
            self.t[i] += np.bincount(idx, v, minlength=e)

    @staticmethod
    def _score(p: np.ndarray, t: np.ndarray) -> np.ndarray:
        rows, xy, xx, yy = p
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.where(xx > 0, np.maximum(0.0, xy / xx), 0.0)
            r2 = np.where(yy > 0, 1.0 - (yy - 2 * beta * xy + beta**2 * xx) / yy, 0.0)
            n, sx, sy, sxy, sxx, syy = t
            cov = sxy - sx * sy / np.maximum(n, 1)
            vx = sxx - sx**2 / np.maximum(n, 1)
            vy = syy - sy**2 / np.maximum(n, 1)
            ok = (n > 2) & (vx > 1e-12) & (vy > 1e-12)
            corr = np.where(ok, cov / np.sqrt(np.where(ok, vx * vy, 1.0)), 0.0)
        weight = rows + np.where(n > 2, n, 0)
        mixed = rows * r2 + np.where(n > 2, n, 0) * np.maximum(0.0, corr) ** 2
        return np.where(weight > 0, mixed / np.maximum(weight, 1), 0.0)

    def scores(self) -> tuple[float, np.ndarray]:
        """(the run's score, each episode's score `[E]`)."""
        run = self._score(self.p.sum(1, keepdims=True), self.t.sum(1, keepdims=True))[0]
        return float(run), self._score(self.p, self.t)


class NormalEquations:
    """Least squares by running sums: preferences (centred over actions, no intercept) and
    taken values (with an intercept) on features `[.., D]`; weights `[D]` and an intercept."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.xtx = np.zeros((dim + 1, dim + 1))
        self.xty = np.zeros(dim + 1)
        self.yy = self.sy = self.n = 0.0

    def _add(self, x: np.ndarray, y: np.ndarray, intercept: bool) -> None:
        """Add rows `x [R, D]`, `y [R]`; the intercept's column (ones, or zeros for centred
        preferences) is added in closed form rather than built: a [R, D + 1] copy cost more
        than the products."""
        d = self.dim
        self.xtx[:d, :d] += x.T @ x
        self.xty[:d] += np.dot(y, x)
        if intercept:
            sums = x.sum(0)
            self.xtx[:d, d] += sums
            self.xtx[d, :d] += sums
            self.xtx[d, d] += len(x)
            self.xty[d] += y.sum()
        self.yy += float(np.dot(y, y))
        self.sy += float(y.sum())
        self.n += len(y)

    def add_prefs(self, phi: np.ndarray, y: np.ndarray) -> None:
        self._add(centre(phi).reshape(-1, self.dim), centre(y).ravel(), intercept=False)

    def add_taken(self, phi: np.ndarray, y: np.ndarray) -> None:
        self._add(
            np.asarray(phi, float).reshape(-1, self.dim), np.asarray(y, float), intercept=True
        )

    def solve(self) -> tuple[np.ndarray, float, float]:
        """(weights `[D]`, intercept, R^2 of the fit). Directions the evidence cannot see (a
        feature constant over actions) get weight 0 (the minimum-norm solution)."""
        coef = np.linalg.pinv(self.xtx) @ self.xty
        sse = self.yy - 2 * coef @ self.xty + coef @ self.xtx @ coef
        sst = self.yy - (self.sy**2 / self.n if self.n else 0.0)
        r2 = 1.0 - sse / sst if sst > 0 else 0.0
        return coef[: self.dim], float(coef[self.dim]), float(r2)


def logit_loglik(actions: np.ndarray, phi: np.ndarray, w: np.ndarray) -> float:
    """Mean log-likelihood of observed actions `[R]` under softmax(Phi `[R, A, D]` . w)."""
    z = phi @ w
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(logp[np.arange(len(actions)), actions].mean())


def logit_scale(actions: np.ndarray, x: np.ndarray) -> float:
    """The maximum-likelihood beta in [0, 100] of observed actions `[R]` under softmax(beta x),
    x `[R, A]` (0 when nothing along x explains them)."""
    if not len(actions):
        return 0.0
    phi = x[..., None]
    res = optimize.minimize_scalar(
        lambda b: -logit_loglik(actions, phi, np.array([b])), bounds=(0.0, 100.0), method="bounded"
    )
    base = logit_loglik(actions, phi, np.zeros(1))
    return float(res.x) if -float(res.fun) > base else 0.0


def logit_weights(actions: np.ndarray, phi: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Maximum-likelihood conditional-logit weights `[D]` (a small L2 keeps them finite)."""
    r, _, dim = phi.shape

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = phi @ w
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        taken = phi[np.arange(r), actions]  # [R, D]
        nll = -float(np.log(p[np.arange(r), actions] + 1e-300).mean()) + l2 * float(w @ w)
        grad = -(taken - np.einsum("ra,rad->rd", p, phi)).mean(0) + 2 * l2 * w
        return nll, grad

    res = optimize.minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B")
    return res.x
