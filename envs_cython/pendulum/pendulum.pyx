# Binding of the C Pendulum core (pendulum.h). Compiler directives (boundscheck, wraparound, cdivision,
# initializedcheck) are set for every env in setup.py.
"""Cython binding of the C Pendulum: one ``Pendulum`` struct per env, borrowing rows of NumPy buffers."""

from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc


cdef extern from "pendulum.h" nogil:
    ctypedef struct Log:
        double episode_return
        double episode_length
        double n

    ctypedef struct Pendulum:
        double* state
        float* observations
        const float* actions
        float* rewards
        unsigned char* terminals
        unsigned char* truncations
        float* final_observations
        Log log
        uint64_t rng
        double episode_return
        double g
        int32_t tick
        int32_t max_steps

    void c_seed(Pendulum* env, uint64_t seed)
    void c_reset(Pendulum* env)
    void c_step_all(Pendulum* envs, int n)


ctypedef Pendulum EnvT
ENV_NAME = "Pendulum"

include "../thrust_binding.pxi"


cdef class CyPendulum(CoreBase):
    """``num_envs`` C Pendulums stepping in place into the given buffers (all C-contiguous, leading axis N).

    Args:
        state: [N, 2] float64, the physics state (th, thdot).
        observations: [N, 3] float32.
        actions: [N, 1] float32.
        rewards: [N] float32.
        terminals: [N] uint8 (a ``.view(np.uint8)`` of the bool buffer).
        truncations: [N] uint8.
        final_observations: [N, 3] float32.
        max_steps: episode length at which ``truncations`` is set.
        g: gravity.

    The memoryviews are kept so the buffers outlive the structs that point into them.
    """

    cdef double[:, ::1] state
    cdef float[:, ::1] observations
    cdef float[:, ::1] actions
    cdef float[::1] rewards
    cdef unsigned char[::1] terminals
    cdef unsigned char[::1] truncations
    cdef float[:, ::1] final_observations

    def __cinit__(
        self,
        double[:, ::1] state,
        float[:, ::1] observations,
        float[:, ::1] actions,
        float[::1] rewards,
        unsigned char[::1] terminals,
        unsigned char[::1] truncations,
        float[:, ::1] final_observations,
        int max_steps,
        double g,
    ):
        cdef Py_ssize_t n = state.shape[0]
        if n < 1:
            raise ValueError(f"need at least one env, got {n}")
        if (
            state.shape[1] != 2 or observations.shape[0] != n or observations.shape[1] != 3
            or actions.shape[0] != n or actions.shape[1] != 1 or rewards.shape[0] != n
            or terminals.shape[0] != n or truncations.shape[0] != n or final_observations.shape[0] != n
            or final_observations.shape[1] != 3
        ):
            raise ValueError(
                f"buffer shapes do not match {n} envs: state ({state.shape[0]}, {state.shape[1]}), "
                f"observations ({observations.shape[0]}, {observations.shape[1]}), "
                f"actions ({actions.shape[0]}, {actions.shape[1]}), rewards ({rewards.shape[0]},), "
                f"terminals ({terminals.shape[0]},), truncations ({truncations.shape[0]},), "
                f"final_observations ({final_observations.shape[0]}, {final_observations.shape[1]})"
            )
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.state = state
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.truncations = truncations
        self.final_observations = final_observations
        self.envs = <Pendulum*> calloc(n, sizeof(Pendulum))
        if self.envs == NULL:
            raise MemoryError(f"cannot allocate {n} Pendulum structs")
        self.num_envs = <int> n
        cdef Py_ssize_t i
        cdef Pendulum* env
        for i in range(n):
            env = &self.envs[i]
            env.state = &state[i, 0]
            env.observations = &observations[i, 0]
            env.actions = &actions[i, 0]
            env.rewards = &rewards[i]
            env.terminals = &terminals[i]
            env.truncations = &truncations[i]
            env.final_observations = &final_observations[i, 0]
            env.max_steps = max_steps
            env.g = g
