"""Fill rollouts from a vectorizer, in sync mode (every ``recv()`` returns all agents) or async mode (each
``recv()`` returns the first ready group of workers, EnvPool style, so env stepping overlaps inference).

Each group of agents advances through rows of the rollout on its own. A group that has taken ``T`` steps
delivers the bootstrap observation of that rollout and moves on to row 0 of the next one, acting with the
current (not yet updated) policy: its behaviour log-probs are stored, so PPO's ratio accounts for the one-update
lag. The rollout is handed to the learner once every agent has completed it; the group that completed it waits
(its actions are not sent) until the next :meth:`Collector.collect`, which then acts with the updated policy.
Two rollout buffers alternate. A group that completes the next rollout too while the slowest group is still on
the current one (its worker got more CPU) starts its part of that next rollout again from row 0, overwriting
its own rows: every rollout still holds T consecutive steps of each agent with their bootstrap value, nothing
blocks, and no group can run two rollouts ahead (which would leave a rollout that never completes).
Index convention: :mod:`thrust_cli.learn.rollout`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from thrust_cli.learn.rollout import EpisodeTracker, Rollout

GroupKey = tuple[int, int]


class Transfer:
    """Host <-> device copies of the step loop.

    On CUDA (``staged``) observations go host -> pinned staging buffer -> device with ``non_blocking=True``, and
    actions device -> pinned host buffer with ``non_blocking=True`` followed by one event synchronisation: the
    only synchronisation of a step. Otherwise (the CPU path) plain ``.to(device)`` / ``.cpu().numpy()``.

    Args:
        device: the learner's device.
        staged: use the pinned, non-blocking path (default: when ``device`` is CUDA). Pinning needs CUDA, so a
            staged transfer on the CPU uses ordinary host buffers (tests use it to count synchronisations).

    Attributes:
        syncs: synchronisations performed so far (one per :meth:`to_host`).
        uploads: staged host -> device copies so far (per step: the observations and one block of rewards and
            flags; an async batch's agent ids when they are not one contiguous block).
    """

    def __init__(self, device: torch.device, staged: bool | None = None) -> None:
        self.device = device
        self.staged = device.type == "cuda" if staged is None else staged
        self.pin = self.staged and device.type == "cuda"
        self._buffers: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}
        # pinned upload buffers: the event after each one's last non-blocking copy, waited on before it is
        # rewritten (already passed within a step, whose end synchronises; this covers a rollout's handover)
        self._uploaded: dict[tuple[str, tuple[int, ...], torch.dtype], Any] = {}
        self.syncs = 0
        self.uploads = 0

    def _buffer(self, tag: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        key = (tag, shape, dtype)
        buf = self._buffers.get(key)
        if buf is None:
            buf = torch.empty(shape, dtype=dtype, pin_memory=self.pin)
            self._buffers[key] = buf
        return buf

    def to_device(self, array: np.ndarray, tag: str = "obs", capacity: int | None = None) -> torch.Tensor:
        """``array`` as a tensor on the device (through a pinned staging buffer when staged).

        ``tag`` names the staging buffer: two copies in flight within one step must use different tags. A
        buffer is rewritten only after its previous upload has completed (an event per buffer). ``capacity``:
        arrays whose first axis varies (the agents that were truncated this step) share one buffer of that many
        rows and copy a prefix of it, instead of pinning a buffer for every length.
        """
        host = torch.from_numpy(array)
        if not self.staged:
            return host.to(self.device)
        if capacity is not None and len(host) > capacity:
            raise ValueError(f"{tag}: {len(host)} rows exceed the staging capacity {capacity}")
        key = ("in-" + tag, (capacity, *host.shape[1:]) if capacity is not None else tuple(host.shape), host.dtype)
        staging = self._buffer(*key)
        self.uploads += 1
        previous = self._uploaded.get(key)
        if previous is not None:
            previous.synchronize()  # its last upload has been read (not a stream sync: no sync-debug report)
        if capacity is not None:
            staging = staging[: len(host)]
        staging.copy_(host)
        out = staging.to(self.device, non_blocking=True)
        if self.pin:
            self._uploaded[key] = self._record()
        return out

    def _record(self) -> Any:
        """A CUDA event recorded on the device's current stream (where the non-blocking copies were queued)."""
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event

    def to_host(self, tensor: torch.Tensor) -> np.ndarray:
        """``tensor`` as a host array, after the one synchronisation of the step when staged."""
        if not self.staged:
            return tensor.cpu().numpy()
        host = self._buffer("out", tuple(tensor.shape), tensor.dtype)
        host.copy_(tensor, non_blocking=True)
        if self.pin:
            self._record().synchronize()
        self.syncs += 1
        return host.numpy()


class Collector:
    """Steps ``vec`` with ``policy`` and stores transitions into two alternating :class:`Rollout` buffers.

    Args:
        vec: a vectorizer (``reset/send/recv``, ``num_agents``, ``final_observations``).
        policy: module returning ``(logits, values)``; ``policy.value(obs)`` for bootstrap values.
        num_steps: rows T of a rollout per agent.
        device: where the rollout tensors live.
        tracker: episode accounting over all agents.
        stop: called after every stored step; returning True makes :meth:`collect` return None.
        bptt_horizon: recurrent policies: the segment length whose start states are stored.
        transfer: host <-> device copies (default: :class:`Transfer` for ``device``, pinned on CUDA).
        autocast_dtype: ``train.amp``'s dtype: inference runs under the same autocast as the update's forward
            (so the stored log-probs come from the computation the update repeats), its outputs cast to float32.

    Attributes:
        timing: cumulative seconds spent in the env (``recv``/``send``), in inference (policy forward and
            sampling) and copying (host → device, buffer writes, device → host).
    """

    def __init__(
        self,
        vec: Any,
        policy: Any,
        num_steps: int,
        device: torch.device,
        tracker: EpisodeTracker,
        stop: Callable[[int], bool],
        bptt_horizon: int = 1,
        transfer: Transfer | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        obs_space = vec.single_observation_space
        self.autocast_dtype = autocast_dtype
        obs_dtype = torch.from_numpy(np.zeros(0, dtype=obs_space.dtype)).dtype
        self.vec, self.policy, self.T, self.device = vec, policy, num_steps, device
        self.num_agents = vec.num_agents
        self.transfer = transfer if transfer is not None else Transfer(device)
        # recurrent policies: the running state of every agent, and each segment's start state in the rollout
        self.L = bptt_horizon
        recurrent = bool(getattr(policy, "recurrent", False))
        hidden = policy.hidden_size if recurrent else 0
        self.state: tuple[torch.Tensor, torch.Tensor] | None = (
            policy.initial_state(self.num_agents, device) if recurrent else None
        )
        act_space = vec.single_action_space
        continuous = bool(getattr(policy.dist, "continuous", False))
        self.bufs = [
            Rollout.allocate(
                num_steps,
                self.num_agents,
                obs_space.shape,
                obs_dtype,
                device,
                num_steps // bptt_horizon,
                hidden,
                action_shape=tuple(act_space.shape) if continuous else (),
                action_dtype=torch.float32 if continuous else torch.long,
            )
            for _ in range(2)
        ]
        self.timing = {"env_s": 0.0, "inference_s": 0.0, "copy_s": 0.0}
        self.tracker, self.stop = tracker, stop
        self.seq = 0  # the rollout being completed
        self.position: dict[GroupKey, tuple[int, int]] = {}  # (rollout, row) of the group's next observation
        self.pending: dict[GroupKey, tuple[int, int]] = {}  # (rollout, row) awaiting the group's rewards
        self.completed: dict[int, set[GroupKey]] = {}  # groups that completed rollout `seq` so far
        self.global_step = 0

    def collect(self) -> Rollout | None:
        """Step until rollout ``seq`` is complete and return its buffer (None if ``stop`` asked to stop)."""
        timing = self.timing
        while True:
            began = time.perf_counter()
            obs, rewards, terminals, truncations, _, agent_ids = self.vec.recv()
            received = time.perf_counter()
            timing["env_s"] += received - began
            key = (int(agent_ids[0]), len(agent_ids))
            first = key[0]
            contiguous = int(agent_ids[-1]) - first + 1 == key[1]
            index: Any = slice(first, first + key[1]) if contiguous else self._index(agent_ids)
            # the transition caused by the group's last action
            pending = self.pending.pop(key, None)
            if pending is not None:
                self._store_transition(pending, index, agent_ids, rewards, terminals, truncations)
                if self.stop(self.global_step):
                    return None
            seq, row = self.position.get(key, (self.seq, 0))
            obs_t = self.transfer.to_device(obs)
            timing["copy_s"] += time.perf_counter() - received
            if row == self.T:  # the bootstrap observation of rollout `seq`
                with torch.no_grad():
                    self.bufs[seq % 2].last_values[index] = self._values(obs_t, index)
                self.completed.setdefault(seq, set()).add(key)
                # on to the next rollout, unless that would be two ahead of the slowest group: then redo this one
                seq, row = min(seq + 1, self.seq + 1), 0
                self.position[key] = (seq, row)
                if sum(n for _, n in self.completed.get(self.seq, ())) == self.num_agents:
                    # hand the rollout over; this group acts after the update, on the next collect()
                    del self.completed[self.seq]
                    self.seq += 1
                    return self.bufs[(self.seq - 1) % 2]
            self._act(key, index, seq, row, obs_t)

    def _index(self, agent_ids: np.ndarray) -> torch.Tensor:
        """The agents of an async batch (not one contiguous block) as an index tensor on the device."""
        if not self.transfer.staged:
            return torch.from_numpy(agent_ids)
        return self.transfer.to_device(np.ascontiguousarray(agent_ids, dtype=np.int64), "ids")

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, self.autocast_dtype)

    def _values(self, obs: torch.Tensor, index: Any) -> torch.Tensor:
        """V(obs) for the agents ``index`` (with their current recurrent state, which is not advanced)."""
        with self._autocast():
            if self.state is None:
                values = self.policy.value(obs)
            else:
                values = self.policy(obs, (self.state[0][:, index], self.state[1][:, index]))[1]
        return values.float()

    def _act(self, key: GroupKey, index: Any, seq: int, row: int, obs: torch.Tensor) -> None:
        began = time.perf_counter()
        with torch.no_grad():
            if self.state is None:
                with self._autocast():
                    logits, values = self.policy(obs)
            else:
                h, c = self.state[0][:, index], self.state[1][:, index]
                if row % self.L == 0:
                    buf = self.bufs[seq % 2]
                    assert buf.h0 is not None and buf.c0 is not None
                    buf.h0[row // self.L, index] = h[0]
                    buf.c0[row // self.L, index] = c[0]
                with self._autocast():
                    logits, values, (h, c) = self.policy(obs, (h, c))
                self.state[0][:, index] = h
                self.state[1][:, index] = c
            if self.autocast_dtype is not None:
                logits, values = logits.float(), values.float()
            actions, logprobs = self.policy.dist.sample(logits)
            env_actions = self.policy.dist.to_env(actions)
        inferred = time.perf_counter()
        buf = self.bufs[seq % 2]
        buf.obs[row, index] = obs
        buf.actions[row, index] = actions
        buf.logprobs[row, index] = logprobs
        buf.values[row, index] = values
        self.pending[key] = (seq, row)
        self.position[key] = (seq, row + 1)
        env_actions = self.transfer.to_host(env_actions)
        sending = time.perf_counter()
        self.vec.send(env_actions)
        self.timing["inference_s"] += inferred - began
        self.timing["copy_s"] += sending - inferred
        self.timing["env_s"] += time.perf_counter() - sending

    def _store_transition(
        self,
        target: tuple[int, int],
        index: Any,
        agent_ids: np.ndarray,
        rewards: np.ndarray,
        terminals: np.ndarray,
        truncations: np.ndarray,
    ) -> None:
        seq, row = target
        dones = terminals | truncations
        self.global_step += len(agent_ids)
        self.tracker.step(rewards, dones, index if isinstance(index, slice) else agent_ids)
        ended = self._store(seq, row, index, agent_ids, rewards, terminals, truncations, dones)
        if self.state is not None and dones.any():
            if ended is None:
                ids = torch.from_numpy(agent_ids[dones]).to(self.device)
                self.state[0][:, ids] = 0.0  # the next observation starts a new episode
                self.state[1][:, ids] = 0.0
            else:  # staged: a mask already on the device, no index of varying length to copy
                keep = (~ended).to(self.state[0].dtype)[None, :, None]
                self.state[0][:, index] = self.state[0][:, index] * keep
                self.state[1][:, index] = self.state[1][:, index] * keep

    def _store(
        self,
        seq: int,
        row: int,
        index: Any,
        agent_ids: np.ndarray,
        rewards: np.ndarray,
        terminals: np.ndarray,
        truncations: np.ndarray,
        dones: np.ndarray,
    ) -> torch.Tensor | None:
        """Write one step's rewards and flags into row ``row`` of rollout ``seq``.

        Staged (CUDA): the four arrays travel as ONE pinned, non-blocking copy of a [4, n] float32 block, and the
        dones come back as a device mask for the recurrent-state reset (returned; None on the plain path). The
        truncated agents' final observations and ids follow the same way, through buffers of ``num_agents`` rows
        (with thousands of agents some episode hits its time limit almost every step).
        """
        buf = self.bufs[seq % 2]
        cut = truncations & ~terminals
        ended = None
        if self.transfer.staged:
            block = np.stack([rewards, terminals, dones, cut]).astype(np.float32, copy=False)
            step = self.transfer.to_device(block, "step")
            buf.rewards[row, index] = step[0]
            buf.terminals[row, index] = step[1] > 0.5
            buf.dones[row, index] = ended = step[2] > 0.5
            buf.truncated[row, index] = step[3] > 0.5
        else:
            buf.rewards[row, index] = torch.from_numpy(rewards).to(self.device)
            buf.terminals[row, index] = torch.from_numpy(terminals).to(self.device)
            buf.dones[row, index] = torch.from_numpy(dones).to(self.device)
            buf.truncated[row, index] = torch.from_numpy(cut).to(self.device)
        if cut.any():
            # bootstrap a truncated episode from its final observation, never the auto-reset one
            cut_ids = np.ascontiguousarray(agent_ids[cut], dtype=np.int64)
            final = np.ascontiguousarray(self.vec.final_observations[cut_ids])
            ids = self.transfer.to_device(cut_ids, "cut-ids", capacity=self.num_agents)
            final_obs = self.transfer.to_device(final, "cut-obs", capacity=self.num_agents)
            with torch.no_grad():
                buf.final_values[row, ids] = self._values(final_obs, ids)
        return ended
