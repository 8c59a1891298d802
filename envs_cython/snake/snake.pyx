# Binding of the C Snake core (snake.h). Compiler directives (boundscheck, wraparound, cdivision,
# initializedcheck) are set for every env in setup.py.
"""Cython binding of the C Snake: one ``Snake`` struct per board, borrowing slices of NumPy buffers."""

import numpy as np

from libc.stdint cimport int8_t, int32_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free


cdef extern from "snake.h" nogil:
    ctypedef struct Log:
        double episode_return
        double episode_length
        double food_eaten
        double n

    ctypedef struct SnakeAgent:
        double episode_return
        int32_t head
        int32_t tail
        int32_t length
        int32_t tick
        int32_t food_eaten
        int32_t dir

    ctypedef struct Snake:
        int8_t* grid
        uint8_t* cell_dirs
        int8_t* observations
        const int32_t* actions
        float* rewards
        unsigned char* terminals
        unsigned char* truncations
        int8_t* final_observations
        SnakeAgent* agents
        int32_t* ended
        Log log
        uint64_t rng
        int32_t width
        int32_t height
        int32_t vision
        int32_t stride
        int32_t num_snakes
        int32_t num_food
        int32_t food_deficit
        int32_t max_steps
        float reward_food
        float reward_death
        float reward_step

    void c_seed(Snake* env, uint64_t seed)
    void c_reset(Snake* env)
    void c_step_all(Snake* envs, int n)


ctypedef Snake EnvT
ENV_NAME = "Snake"

include "../thrust_binding.pxi"


cdef class CySnake(CoreBase):
    """``B`` C Snake boards of ``S`` snakes each, stepping in place into the given buffers (all C-contiguous;
    the agents of board b are rows ``[b * S, (b + 1) * S)``).

    Args:
        grid: [B, height + 2 vision, width + 2 vision] int8, the padded boards (written by reset).
        cell_dirs: same shape, uint8: the body links (see snake.h).
        observations: [B * S, 2 vision + 1, 2 vision + 1] int8.
        actions: [B * S] int32.
        rewards: [B * S] float32.
        terminals: [B * S] uint8 (a ``.view(np.uint8)`` of the bool buffer).
        truncations: [B * S] uint8.
        final_observations: like ``observations``.
        num_snakes, width, height, vision, num_food, max_steps, reward_food, reward_death, reward_step: see
            ``Snake`` (the Python class validates them).

    The memoryviews are kept so the buffers outlive the structs that point into them.
    """

    cdef SnakeAgent* agents
    cdef int32_t* ended
    cdef int num_snakes
    cdef int8_t[:, :, ::1] grid
    cdef uint8_t[:, :, ::1] cell_dirs
    cdef int8_t[:, :, ::1] observations
    cdef int32_t[::1] actions
    cdef float[::1] rewards
    cdef unsigned char[::1] terminals
    cdef unsigned char[::1] truncations
    cdef int8_t[:, :, ::1] final_observations

    def __cinit__(
        self,
        int8_t[:, :, ::1] grid,
        uint8_t[:, :, ::1] cell_dirs,
        int8_t[:, :, ::1] observations,
        int32_t[::1] actions,
        float[::1] rewards,
        unsigned char[::1] terminals,
        unsigned char[::1] truncations,
        int8_t[:, :, ::1] final_observations,
        int num_snakes,
        int width,
        int height,
        int vision,
        int num_food,
        int max_steps,
        float reward_food,
        float reward_death,
        float reward_step,
    ):
        cdef Py_ssize_t num_envs = grid.shape[0]
        cdef Py_ssize_t side = 2 * vision + 1
        cdef Py_ssize_t n = num_envs * num_snakes
        if num_envs < 1 or num_snakes < 1 or width < 1 or height < 1 or vision < 1 or max_steps < 1 or num_food < 0:
            raise ValueError(
                f"invalid Snake parameters: {num_envs} boards, num_snakes={num_snakes}, width={width}, "
                f"height={height}, vision={vision}, num_food={num_food}, max_steps={max_steps}"
            )
        if (
            grid.shape[1] != height + 2 * vision or grid.shape[2] != width + 2 * vision
            or cell_dirs.shape[0] != num_envs or cell_dirs.shape[1] != grid.shape[1]
            or cell_dirs.shape[2] != grid.shape[2]
        ):
            raise ValueError(
                f"grid ({grid.shape[0]}, {grid.shape[1]}, {grid.shape[2]}) and cell_dirs ({cell_dirs.shape[0]}, "
                f"{cell_dirs.shape[1]}, {cell_dirs.shape[2]}) must be ({num_envs}, {height + 2 * vision}, "
                f"{width + 2 * vision})"
            )
        if (
            observations.shape[0] != n or observations.shape[1] != side or observations.shape[2] != side
            or actions.shape[0] != n or rewards.shape[0] != n or terminals.shape[0] != n
            or truncations.shape[0] != n or final_observations.shape[0] != n
            or final_observations.shape[1] != side or final_observations.shape[2] != side
        ):
            raise ValueError(
                f"buffer shapes do not match {n} agents with {side}x{side} views: observations "
                f"({observations.shape[0]}, {observations.shape[1]}, {observations.shape[2]}), "
                f"actions ({actions.shape[0]},), rewards ({rewards.shape[0]},), "
                f"terminals ({terminals.shape[0]},), truncations ({truncations.shape[0]},), final_observations "
                f"({final_observations.shape[0]}, {final_observations.shape[1]}, {final_observations.shape[2]})"
            )
        self.grid = grid
        self.cell_dirs = cell_dirs
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.truncations = truncations
        self.final_observations = final_observations
        self.envs = <Snake*> calloc(num_envs, sizeof(Snake))
        self.agents = <SnakeAgent*> calloc(n, sizeof(SnakeAgent))
        self.ended = <int32_t*> calloc(n, sizeof(int32_t))
        if self.envs == NULL or self.agents == NULL or self.ended == NULL:
            self._free()
            raise MemoryError(f"cannot allocate {num_envs} Snake boards of {num_snakes} snakes")
        self.num_envs = <int> num_envs
        self.num_snakes = num_snakes
        cdef Py_ssize_t b, first
        cdef Snake* env
        for b in range(num_envs):
            first = b * num_snakes
            env = &self.envs[b]
            env.grid = &grid[b, 0, 0]
            env.cell_dirs = &cell_dirs[b, 0, 0]
            env.observations = &observations[first, 0, 0]
            env.actions = &actions[first]
            env.rewards = &rewards[first]
            env.terminals = &terminals[first]
            env.truncations = &truncations[first]
            env.final_observations = &final_observations[first, 0, 0]
            env.agents = &self.agents[first]
            env.ended = &self.ended[first]
            env.width = width
            env.height = height
            env.vision = vision
            env.stride = width + 2 * vision
            env.num_snakes = num_snakes
            env.num_food = num_food
            env.max_steps = max_steps
            env.reward_food = reward_food
            env.reward_death = reward_death
            env.reward_step = reward_step

    cdef void _free(self) noexcept:
        free(self.agents)
        free(self.ended)
        self.agents = NULL
        self.ended = NULL
        CoreBase._free(self)

    def agent_state(self):
        """Copies of the per-snake state, each [B * S] int32: ``(head, tail, length, tick, food_eaten, dir)``,
        with head and tail as flat indices into the board's padded grid."""
        self._check_open()
        cdef Py_ssize_t n = <Py_ssize_t> self.num_envs * self.num_snakes
        out = np.empty((6, n), dtype=np.int32)
        cdef int32_t[:, ::1] v = out
        cdef Py_ssize_t i
        for i in range(n):
            v[0, i] = self.agents[i].head
            v[1, i] = self.agents[i].tail
            v[2, i] = self.agents[i].length
            v[3, i] = self.agents[i].tick
            v[4, i] = self.agents[i].food_eaten
            v[5, i] = self.agents[i].dir
        return tuple(out)
