# Binding of the C Walk core (walk.h). build.py sets the compiler directives (boundscheck, wraparound,
# cdivision, initializedcheck) and puts envs_cython/ on the include paths for thrust_binding.pxi and thrust_rng.h.
"""Cython binding of the C Walk: one ``Walk`` struct per env, borrowing rows of NumPy buffers."""

from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc


cdef extern from "walk.h" nogil:
    ctypedef struct Log:
        double episode_return
        double episode_length
        double n

    ctypedef struct Walk:
        float* observations
        const int32_t* actions
        float* rewards
        unsigned char* terminals
        unsigned char* truncations
        float* final_observations
        Log log
        uint64_t rng
        double episode_return
        int32_t position
        int32_t goal
        int32_t tick
        int32_t length
        int32_t max_steps

    void c_seed(Walk* env, uint64_t seed)
    void c_reset(Walk* env)
    void c_step_all(Walk* envs, int n)


ctypedef Walk EnvT
ENV_NAME = "Walk"

# Thrust's shared part of every binding: CoreBase with seed(), reset(), step() (without the GIL), log(), close().
include "thrust_binding.pxi"


cdef class CyWalk(CoreBase):
    """``num_envs`` C Walks stepping in place into the given buffers (all C-contiguous, leading axis N).

    Args:
        observations: [N, 2] float32.
        actions: [N] int32.
        rewards: [N] float32.
        terminals: [N] uint8 (a ``.view(np.uint8)`` of the bool buffer).
        truncations: [N] uint8.
        final_observations: [N, 2] float32.
        length: the corridor's half-length (the ends are at -length and +length).
        max_steps: episode length at which ``truncations`` is set.

    The memoryviews are kept so the buffers outlive the structs that point into them.
    """

    cdef float[:, ::1] observations
    cdef int32_t[::1] actions
    cdef float[::1] rewards
    cdef unsigned char[::1] terminals
    cdef unsigned char[::1] truncations
    cdef float[:, ::1] final_observations

    def __cinit__(
        self,
        float[:, ::1] observations,
        int32_t[::1] actions,
        float[::1] rewards,
        unsigned char[::1] terminals,
        unsigned char[::1] truncations,
        float[:, ::1] final_observations,
        int length,
        int max_steps,
    ):
        cdef Py_ssize_t n = observations.shape[0]
        if n < 1:
            raise ValueError(f"need at least one env, got {n}")
        if (
            observations.shape[1] != 2 or actions.shape[0] != n or rewards.shape[0] != n
            or terminals.shape[0] != n or truncations.shape[0] != n or final_observations.shape[0] != n
            or final_observations.shape[1] != 2
        ):
            raise ValueError(f"buffer shapes do not match {n} envs")
        if length < 1 or max_steps < 1:
            raise ValueError(f"length and max_steps must be >= 1, got {length} and {max_steps}")
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.truncations = truncations
        self.final_observations = final_observations
        self.envs = <Walk*> calloc(n, sizeof(Walk))
        if self.envs == NULL:
            raise MemoryError(f"cannot allocate {n} Walk structs")
        self.num_envs = <int> n
        cdef Py_ssize_t i
        cdef Walk* env
        for i in range(n):
            env = &self.envs[i]
            env.observations = &observations[i, 0]
            env.actions = &actions[i]
            env.rewards = &rewards[i]
            env.terminals = &terminals[i]
            env.truncations = &truncations[i]
            env.final_observations = &final_observations[i, 0]
            env.length = length
            env.max_steps = max_steps
