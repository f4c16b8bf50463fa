"""Deep Q-learning: a network learns to balance a pole on a cart from reward alone.

CartPole-v1 gives +1 per step while the pole stays up, for at most 500 steps. A Q-network maps the
4 numbers of the state to one value per action, Q(s, a): the return expected from taking a, then
acting well. Act greedily on it and you have a policy. It learns from the Bellman equation: for a
transition (s, a, r, s', terminated),

    target = r + gamma * max_a' Q_target(s', a')      (just r if the pole fell: nothing follows)

and the loss pulls Q(s, a) towards that target. Three things make this stable:

- a replay buffer: train on random mini-batches of past transitions, not on the last few,
  which are strongly correlated;
- a target network computes the targets, so they do not move with every update (chasing your
  own tail diverges). It trails the Q-network: after every step it moves a fraction `tau` of the
  way towards it (a soft update; `target_every=N` copies it every N steps instead, as the
  original DQN did);
- the Huber loss, quadratic near 0 and linear beyond, plus gradient clipping: one surprising
  reward does not produce a huge step. And one Adam step of 64 transitions every 4 env steps,
  not every step: fewer, calmer updates (and 4x less compute).

Exploration is epsilon-greedy: a random action with probability epsilon, decayed linearly from 1 to
0.05. With `double=True` (the default) the targets are Double DQN's: the online network picks a',
the target network values it, which curbs max's upward bias. An episode cut off at 500 steps
(truncated, not terminated) still bootstraps from s'. "Solved" is the classic criterion: an average
return of at least 195 over 100 consecutive episodes.

Needs gymnasium, an optional extra:  pip install "retrograd[rl]"

Run:  python examples/dqn_cartpole.py         (under a minute; writes runs/dqn/returns.png)
      python examples/dqn_cartpole.py --seed 1
"""
import argparse
import os
import time

import matplotlib
matplotlib.use("Agg")                          # draw into files, no window needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd import nn, optim  # noqa: E402

SOLVED = 195.0                                 # average return over 100 consecutive episodes


def make_env(name="CartPole-v1"):
    try:
        import gymnasium as gym
    except ImportError as err:
        raise ImportError("dqn_cartpole.py needs gymnasium, which is not installed; install the "
                          'optional extra with: pip install "retrograd[rl]"') from err
    return gym.make(name)


class ReplayBuffer:
    """The last `capacity` transitions, in NumPy arrays used as a ring; `sample` draws a uniform
    random mini-batch of them (with replacement).

    >>> buffer = ReplayBuffer(10_000, state_dim=4)
    >>> buffer.push(state, action, reward, next_state, terminated)
    >>> states, actions, rewards, next_states, terminated = buffer.sample(64, rng)
    """

    def __init__(self, capacity, state_dim):
        self.capacity, self.size, self.next = capacity, 0, 0
        self.states = np.zeros((capacity, state_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.next_states = np.zeros((capacity, state_dim), np.float32)
        self.terminated = np.zeros(capacity, np.float32)

    def push(self, state, action, reward, next_state, terminated):
        i = self.next
        self.states[i], self.actions[i], self.rewards[i] = state, action, reward
        self.next_states[i], self.terminated[i] = next_state, terminated
        self.next = (i + 1) % self.capacity        # the oldest transition is overwritten next
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size, rng):
        i = rng.integers(self.size, size=batch_size)
        return (self.states[i], self.actions[i], self.rewards[i], self.next_states[i],
                self.terminated[i])

    def __len__(self):
        return self.size


def td_target(rewards, terminated, next_q_target, gamma, next_q_online=None):
    """Bellman targets r + gamma * Q_target(s', a') for a batch, with a' = argmax of
    `next_q_online` (Double DQN) if given, else of `next_q_target` (DQN); just r where the
    episode terminated. Arrays: rewards, terminated (B,); next_q_* (B, actions)."""
    chooser = next_q_target if next_q_online is None else next_q_online
    best = next_q_target[np.arange(len(rewards)), chooser.argmax(1)]
    return (rewards + gamma * (1.0 - terminated) * best).astype(np.float32)


def q_network(state_dim=4, actions=2, hidden=128):
    return nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, actions))


def greedy(q_net, state):
    """The action with the highest Q-value in `state` (a NumPy vector)."""
    with rg.no_grad():
        return int(q_net(rg.from_numpy(state[None].astype(np.float32))).numpy().argmax())


def evaluate(q_net, episodes=10, seed=10_000):
    """Average return of the greedy policy (no exploration) over fresh episodes."""
    env, returns = make_env(), []
    for k in range(episodes):
        state, _ = env.reset(seed=seed + k)
        done, total = False, 0.0
        while not done:
            state, reward, terminated, truncated, _ = env.step(greedy(q_net, state))
            total += reward
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def main(max_episodes=600, max_steps=None, lr=5e-4, gamma=0.99, batch_size=64,
         buffer_size=50_000, warmup=1_000, train_every=4, eps_start=1.0, eps_end=0.05,
         eps_decay_steps=10_000, tau=1e-3, target_every=None, hidden=64, double=True,
         stop_when_solved=True, eval_episodes=10, seed=0, out="runs/dqn", progress=True):
    """Train until solved (or `max_episodes` / `max_steps` env steps); return the returns per
    episode, the episode and wall time at which it was solved (None if not), and the greedy
    policy's average return."""
    rg.manual_seed(seed)                           # the network's initial weights
    rng = np.random.default_rng(seed)              # exploration and replay sampling
    env = make_env()
    env.action_space.seed(seed)
    state_dim, n_actions = env.observation_space.shape[0], env.action_space.n

    online = q_network(state_dim, n_actions, hidden)
    target = q_network(state_dim, n_actions, hidden)
    target.load_state_dict(online.state_dict())    # starts as a copy
    optimizer = optim.Adam(online.parameters(), lr=lr)
    loss_fn = nn.HuberLoss()
    buffer = ReplayBuffer(buffer_size, state_dim)

    def learn():
        s, a, r, s2, term = buffer.sample(batch_size, rng)
        s2 = rg.from_numpy(s2)
        with rg.no_grad():                         # targets are constants for this step
            next_q = target(s2).numpy()
            next_online = online(s2).numpy() if double else None
        y = td_target(r, term, next_q, gamma, next_online)
        q = online(rg.from_numpy(s))[np.arange(batch_size), a]     # Q(s, a) of the taken a
        loss = loss_fn(q, rg.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(online.parameters(), 10.0)
        optimizer.step()

    returns, solved_at, solved_seconds, steps = [], None, None, 0
    start = time.perf_counter()
    state, _ = env.reset(seed=seed)
    for episode in range(1, max_episodes + 1):
        done, total = False, 0.0
        while not done:
            epsilon = max(eps_end, eps_start - (eps_start - eps_end) * steps / eps_decay_steps)
            if rng.random() < epsilon:
                action = int(rng.integers(n_actions))
            else:
                action = greedy(online, state)
            next_state, reward, terminated, truncated, _ = env.step(action)
            # Store `terminated` only: a cut-off at 500 steps is not the end of the task.
            buffer.push(state, action, reward, next_state, terminated)
            state, total, steps = next_state, total + reward, steps + 1
            done = terminated or truncated
            if len(buffer) >= warmup and steps % train_every == 0:
                learn()                            # one mini-batch update every few steps
            if target_every is not None:
                if steps % target_every == 0:      # hard: a fresh copy now and then
                    target.load_state_dict(online.state_dict())
            else:                                  # soft: target += tau * (online - target)
                with rg.no_grad():
                    for t, o in zip(target.parameters(), online.parameters()):
                        t.mul_(1 - tau).add_(tau * o)
        state, _ = env.reset()
        returns.append(total)
        average = float(np.mean(returns[-100:]))
        if progress and episode % 20 == 0:
            print(f"episode {episode:4d}  steps {steps:6d}  epsilon {epsilon:.2f}  "
                  f"return {total:5.0f}  average of last 100 {average:6.1f}  "
                  f"({time.perf_counter() - start:.0f} s)")
        if solved_at is None and len(returns) >= 100 and average >= SOLVED:
            solved_at, solved_seconds = episode, time.perf_counter() - start
            print(f"solved at episode {episode}: average return {average:.1f} over episodes "
                  f"{episode - 99}-{episode}, {steps} steps, {solved_seconds:.0f} s")
            if stop_when_solved:
                break
        if max_steps is not None and steps >= max_steps:
            break
    env.close()
    seconds = time.perf_counter() - start
    if solved_at is None:
        print(f"not solved in {len(returns)} episodes ({steps} steps, {seconds:.0f} s); best "
              f"100-episode average {max_average(returns):.1f}")
    greedy_return = evaluate(online, eval_episodes) if eval_episodes else None
    if greedy_return is not None:
        print(f"greedy policy: average return {greedy_return:.1f} over {eval_episodes} new "
              f"episodes (500 is the maximum)")

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "returns.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(1, len(returns) + 1), returns, lw=0.8, alpha=0.5, label="return per episode")
    moving = [np.mean(returns[max(0, i - 99):i + 1]) for i in range(len(returns))]
    ax.plot(range(1, len(returns) + 1), moving, lw=2, label="average of last 100")
    ax.axhline(SOLVED, color="gray", ls="--", label=f"solved ({SOLVED:.0f})")
    ax.set(xlabel="episode", ylabel="return", title="DQN on CartPole-v1")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"returns per episode: {path}")
    return dict(returns=returns, solved_at=solved_at, solved_seconds=solved_seconds, steps=steps,
                seconds=seconds, greedy_return=greedy_return, model=online, png=path)


def max_average(returns, window=100):
    return max(np.mean(returns[max(0, i - window + 1):i + 1]) for i in range(len(returns)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=600, help="give up after this many")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--tau", type=float, default=1e-3, help="soft target update rate")
    parser.add_argument("--target-every", type=int, default=None,
                        help="copy the target every N steps instead of soft updates")
    parser.add_argument("--no-double", action="store_true", help="plain DQN targets")
    parser.add_argument("--keep-going", action="store_true", help="do not stop once solved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (one is fastest for matrices this small)")
    parser.add_argument("--out", default="runs/dqn")
    args = parser.parse_args()
    rg.set_num_threads(args.threads)
    main(args.episodes, lr=args.lr, tau=args.tau, target_every=args.target_every,
         double=not args.no_double, stop_when_solved=not args.keep_going, seed=args.seed,
         out=args.out)
