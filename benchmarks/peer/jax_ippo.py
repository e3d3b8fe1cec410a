"""IPPO in JAX with asfed's networks and schedule: the peer `benchmarks/peer_speed.py` times.

It runs in the benchmark's own environment (JAX and JaxMARL: `benchmarks/peer/setup.sh`), never
asfed's, and prints one JSON line. Its structure follows JaxMARL's
`baselines/IPPO/ippo_ff_mpe.py` (commit c793d09): one jitted update is a scanned rollout of
NUM_ENVS vectorised MPE envs for NUM_STEPS steps, GAE, then UPDATE_EPOCHS epochs of scanned
minibatch steps. What differs from that file, each to match asfed's IPPO (`asfed simulate --env
navigation --method ippo`):

- every agent has its own networks (parameters with a leading agent axis, vmapped), not one
  network shared by all agents;
- Table 2's networks: an actor 128-64 ReLU and a separate critic 128-64 ReLU, initialised as
  torch.nn.Linear is (uniform +-1/sqrt(fan_in)), not a joint 64-64 tanh actor-critic;
- Algorithm 1's schedule: K = 3 epochs, each a fresh random split of an agent's round into one
  minibatch per episode's worth of rows (96 of 100 rows for a 9,600-step round), not 4 x 4;
- two Adams (the actor's and the critic's learning rates, PyTorch's defaults otherwise), no
  gradient clipping, no entropy bonus, no learning-rate annealing, no value clipping;
- each of the K epochs starts from pi_old <- pi and GAE under the current critic (Algorithm 1;
  PureJaxRL's structure computes both once a rollout and reuses them, a different algorithm);
  the critic regresses on Monte-Carlo returns (Eq. 18), not on GAE's.

The environment is JaxMARL's MPE simple spread (3 agents, 25-step episodes, reset inside the
rollout), not asfed's navigation: asfed's envs are NumPy, and the rollout is 5% of an asfed
round, so the comparison is of the training. Its 18 observation features are zero-padded to
`obs_dim` (asfed's navigation: 61), so every matrix product has asfed's shape.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import jax
import jax.numpy as jnp
import jaxmarl
import optax


def init_mlp(key: jax.Array, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
    """ReLU MLP parameters `[(W [in, out], b [out]), ...]`, torch.nn.Linear's initialisation."""
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / jnp.sqrt(fan_in)
        w = jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound)
        b = jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)
        params.append((w, b))
    return params


def mlp(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """x `[..., in]` -> `[..., out]`: Linear-ReLU layers, then a linear output."""
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def make_update(cfg: dict):
    """The jitted update (one round: rollout, GAE, K epochs) and its initial state."""
    env = jaxmarl.make("MPE_simple_spread_v3")
    agents = env.agents
    n, e, t = env.num_agents, cfg["num_envs"], cfg["num_steps"]
    mpe_dim = env.observation_space(agents[0]).shape[0]
    obs_dim = max(mpe_dim, cfg.get("obs_dim", 0))  # zero-padded to asfed's width: same shapes
    actions = env.action_space(agents[0]).n
    rows = e * t  # samples an agent learns from each round
    minibatches = cfg["minibatches"]
    actor_tx = optax.adam(cfg["actor_lr"], eps=1e-8)
    critic_tx = optax.adam(cfg["critic_lr"], eps=1e-8)

    def init(key: jax.Array):
        ka, kc, kr = jax.random.split(key, 3)
        actor = jax.vmap(lambda k: init_mlp(k, [obs_dim, *cfg["hidden"], actions]))(
            jax.random.split(ka, n)
        )
        critic = jax.vmap(lambda k: init_mlp(k, [obs_dim, *cfg["hidden"], 1]))(
            jax.random.split(kc, n)
        )
        obs, state = jax.vmap(env.reset)(jax.random.split(kr, e))
        return (actor, critic, actor_tx.init(actor), critic_tx.init(critic), state, obs, key)

    def stack(d: dict) -> jax.Array:
        return jnp.stack([d[a] for a in agents])  # [N, E, ...]

    def observe(d: dict) -> jax.Array:  # [N, E, obs_dim]: MPE's observations, zero-padded
        x = stack(d)
        return jnp.pad(x, ((0, 0), (0, 0), (0, obs_dim - mpe_dim)))

    def update(carry):
        actor, critic, opt_a, opt_c, state, obs, key = carry

        def env_step(c, _):
            state, obs, key = c
            key, k_act, k_env = jax.random.split(key, 3)
            x = observe(obs)  # [N, E, D]
            logits = jax.vmap(mlp)(actor, x)  # [N, E, A]
            act = jax.random.categorical(k_act, logits)
            step_keys = jax.random.split(k_env, e)
            obs2, state2, reward, done, _ = jax.vmap(env.step)(
                step_keys, state, {a: act[i] for i, a in enumerate(agents)}
            )
            out = (x, act, stack(reward), stack(done))
            return (state2, obs2, key), out

        (state, obs, key), (x, act, reward, done) = jax.lax.scan(
            env_step, (state, obs, key), None, t
        )
        x_last = observe(obs)  # [N, E, D]: the states after the rollout's last step

        def gae_step(c, inp):
            gae, next_value = c
            r, v, d = inp
            delta = r + cfg["gamma"] * next_value * (1 - d) - v
            gae = delta + cfg["gamma"] * cfg["gae_lambda"] * (1 - d) * gae
            return (gae, v), gae

        def return_step(running, inp):  # Eq. 18's Monte-Carlo targets, to each episode's end
            r, d = inp
            running = r + cfg["gamma"] * running * (1 - d)
            return running, running

        _, targets = jax.lax.scan(
            return_step, jnp.zeros_like(reward[0]), (reward, done), reverse=True
        )

        def per_agent(z: jax.Array) -> jax.Array:  # [T, N, E, ...] -> [N, T * E, ...]
            z = jnp.moveaxis(z, 1, 0)
            return z.reshape((n, rows, *z.shape[3:]))

        def old_and_advantages(actor, critic):
            """Algorithm 1 at each update: pi_old <- pi, and GAE under the current critic."""
            logits = jax.vmap(mlp)(actor, x.swapaxes(0, 1))  # [N, T, E, A]
            logp = jnp.take_along_axis(
                jax.nn.log_softmax(logits), act.swapaxes(0, 1)[..., None], -1
            )
            value = jax.vmap(mlp)(critic, x.swapaxes(0, 1))[..., 0].swapaxes(0, 1)  # [T, N, E]
            last = jax.vmap(mlp)(critic, x_last)[..., 0]  # [N, E]
            _, adv = jax.lax.scan(
                gae_step, (jnp.zeros_like(last), last), (reward, value, done), reverse=True
            )
            return logp[..., 0].swapaxes(0, 1), adv

        def loss(actor, critic, batch):
            x, act, logp_old, adv, target = batch  # each [N, B, ...]

            def one(actor, critic, x, act, logp_old, adv, target):
                logp = jnp.take_along_axis(jax.nn.log_softmax(mlp(actor, x)), act[:, None], -1)
                ratio = jnp.exp(logp[:, 0] - logp_old)
                clipped = jnp.clip(ratio, 1 - cfg["clip"], 1 + cfg["clip"])
                policy = -jnp.minimum(ratio * adv, clipped * adv).mean()
                value = ((mlp(critic, x)[:, 0] - target) ** 2).mean()
                return policy + value  # disjoint parameters: each gets its own loss's gradient

            return jax.vmap(one)(actor, critic, x, act, logp_old, adv, target).sum()

        grad = jax.grad(loss, argnums=(0, 1))

        def epoch(c, _):
            actor, critic, opt_a, opt_c, key = c
            logp, adv = old_and_advantages(actor, critic)
            data = tuple(per_agent(z) for z in (x, act, logp, adv, targets))
            key, k_perm = jax.random.split(key)
            perms = jax.vmap(lambda k: jax.random.permutation(k, rows))(
                jax.random.split(k_perm, n)
            )  # [N, rows]: each agent its own split
            shuffled = tuple(jax.vmap(lambda z, p: z[p])(z, perms) for z in data)
            split = tuple(
                jnp.moveaxis(z.reshape((n, minibatches, -1, *z.shape[2:])), 1, 0) for z in shuffled
            )  # [MB, N, B, ...]

            def step(c, batch):
                actor, critic, opt_a, opt_c = c
                g_a, g_c = grad(actor, critic, batch)
                up_a, opt_a = actor_tx.update(g_a, opt_a)
                up_c, opt_c = critic_tx.update(g_c, opt_c)
                return (
                    optax.apply_updates(actor, up_a),
                    optax.apply_updates(critic, up_c),
                    opt_a,
                    opt_c,
                ), None

            (actor, critic, opt_a, opt_c), _ = jax.lax.scan(
                step, (actor, critic, opt_a, opt_c), split
            )
            return (actor, critic, opt_a, opt_c, key), None

        (actor, critic, opt_a, opt_c, key), _ = jax.lax.scan(
            epoch, (actor, critic, opt_a, opt_c, key), None, cfg["epochs"]
        )
        return (actor, critic, opt_a, opt_c, state, obs, key), reward.sum()

    return jax.jit(update), init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON: the schedule and hyperparameters")
    parser.add_argument("--updates", type=int, default=5, help="timed updates (rounds)")
    args = parser.parse_args()
    cfg = json.loads(args.config)
    update, init = make_update(cfg)
    carry = init(jax.random.PRNGKey(cfg.get("seed", 0)))
    start = time.perf_counter()
    compiled = update.lower(carry).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    carry, _ = compiled(carry)  # warm-up
    jax.block_until_ready(carry)
    start = time.perf_counter()
    for _ in range(args.updates):
        carry, _ = compiled(carry)
    jax.block_until_ready(carry)
    seconds = (time.perf_counter() - start) / args.updates
    steps = cfg["num_envs"] * cfg["num_steps"]
    print(
        json.dumps(
            {
                "seconds_per_update": seconds,
                "env_steps_per_s": steps / seconds,
                "flops_per_update": float(cost.get("flops", float("nan"))),
                "env_steps_per_update": steps,
                "compile_s": compile_s,
                "devices": [str(d) for d in jax.devices()],
            }
        )
    )


if __name__ == "__main__":
    main()
