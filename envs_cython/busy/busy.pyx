# Binding of the C Busy core (busy.h). Compiler directives (boundscheck, wraparound, cdivision,
# initializedcheck) are set for every env in setup.py.
"""Cython binding of the C Busy env: one ``Busy`` struct per env, borrowing rows of NumPy buffers."""

from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc


cdef extern from "busy.h" nogil:
    ctypedef struct Log:
        double episode_return
        double episode_length
        double n

    ctypedef struct Busy:
        float* observations
        const int32_t* actions
        float* rewards
        unsigned char* terminals
        unsigned char* truncations
        float* final_observations
        Log log
        uint64_t rng
        uint64_t sink
        double episode_return
        int32_t tick
        int32_t max_steps
        int32_t obs_dim
        int32_t work

    void c_seed(Busy* env, uint64_t seed)
    void c_reset(Busy* env)
    void c_step_all(Busy* envs, int n)


ctypedef Busy EnvT
ENV_NAME = "Busy"

include "../thrust_binding.pxi"


cdef class CyBusy(CoreBase):
    """``num_envs`` C Busy envs stepping in place into the given buffers (all C-contiguous, leading axis N).

    Args:
        observations: [N, D] float32.
        actions: [N] int32.
        rewards: [N] float32.
        terminals: [N] uint8 (a ``.view(np.uint8)`` of the bool buffer).
        truncations: [N] uint8.
        final_observations: [N, D] float32.
        max_steps: episode length at which ``truncations`` is set.
        work: iterations of the busy chain per env and step.

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
        int max_steps,
        int work,
    ):
        cdef Py_ssize_t n = observations.shape[0]
        cdef Py_ssize_t d = observations.shape[1]
        if n < 1 or d < 1:
            raise ValueError(f"need at least one env and one observation component, got ({n}, {d})")
        if (
            actions.shape[0] != n or rewards.shape[0] != n or terminals.shape[0] != n
            or truncations.shape[0] != n or final_observations.shape[0] != n or final_observations.shape[1] != d
        ):
            raise ValueError(
                f"buffer shapes do not match {n} envs of {d} observation components: "
                f"actions ({actions.shape[0]},), rewards ({rewards.shape[0]},), "
                f"terminals ({terminals.shape[0]},), truncations ({truncations.shape[0]},), "
                f"final_observations ({final_observations.shape[0]}, {final_observations.shape[1]})"
            )
        if max_steps < 1 or work < 0:
            raise ValueError(f"need max_steps >= 1 and work >= 0, got {max_steps} and {work}")
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.truncations = truncations
        self.final_observations = final_observations
        self.envs = <Busy*> calloc(n, sizeof(Busy))
        if self.envs == NULL:
            raise MemoryError(f"cannot allocate {n} Busy structs")
        self.num_envs = <int> n
        cdef Py_ssize_t i
        cdef Busy* env
        for i in range(n):
            env = &self.envs[i]
            env.observations = &observations[i, 0]
            env.actions = &actions[i]
            env.rewards = &rewards[i]
            env.terminals = &terminals[i]
            env.truncations = &truncations[i]
            env.final_observations = &final_observations[i, 0]
            env.max_steps = max_steps
            env.obs_dim = <int32_t> d
            env.work = work
