# Binding of the C Asteroids core (asteroids.h). Compiler directives (boundscheck, wraparound, cdivision,
# initializedcheck) are set for every env in setup.py.
"""Cython binding of the C Asteroids: one ``Asteroids`` struct per env, borrowing rows of NumPy buffers."""

from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc


cdef extern from "asteroids.h" nogil:
    int ASTEROIDS_OBS_SIZE

    ctypedef struct Log:
        double episode_return
        double episode_length
        double score
        double n

    ctypedef struct AsteroidsState:
        pass

    ctypedef struct Asteroids:
        AsteroidsState* state
        float* observations
        const int32_t* actions
        float* rewards
        unsigned char* terminals
        unsigned char* truncations
        float* final_observations
        Log log
        double episode_return
        uint64_t rng
        int32_t max_steps
        int32_t num_lives

    void c_seed(Asteroids* env, uint64_t seed)
    void c_reset(Asteroids* env)
    void c_step_all(Asteroids* envs, int n)


ctypedef Asteroids EnvT
ENV_NAME = "Asteroids"

include "../thrust_binding.pxi"

#: bytes of one env's ``AsteroidsState``: the Python class checks its structured dtype against it
STATE_BYTES = sizeof(AsteroidsState)
#: floats in one observation
OBS_SIZE = ASTEROIDS_OBS_SIZE


cdef class CyAsteroids(CoreBase):
    """``num_envs`` C Asteroids envs stepping in place into the given buffers (all C-contiguous, leading axis N).

    Args:
        state: [N, STATE_BYTES] uint8, a byte view of the game states (``AsteroidsState``, see asteroids.h).
        observations: [N, OBS_SIZE] float32.
        actions: [N] int32.
        rewards: [N] float32.
        terminals: [N] uint8 (a ``.view(np.uint8)`` of the bool buffer).
        truncations: [N] uint8.
        final_observations: [N, OBS_SIZE] float32.
        max_steps: episode length at which ``truncations`` is set.
        num_lives: lives at the start of an episode.

    The memoryviews are kept so the buffers outlive the structs that point into them.
    """

    cdef unsigned char[:, ::1] state
    cdef float[:, ::1] observations
    cdef int32_t[::1] actions
    cdef float[::1] rewards
    cdef unsigned char[::1] terminals
    cdef unsigned char[::1] truncations
    cdef float[:, ::1] final_observations

    def __cinit__(
        self,
        unsigned char[:, ::1] state,
        float[:, ::1] observations,
        int32_t[::1] actions,
        float[::1] rewards,
        unsigned char[::1] terminals,
        unsigned char[::1] truncations,
        float[:, ::1] final_observations,
        int max_steps,
        int num_lives,
    ):
        cdef Py_ssize_t n = state.shape[0]
        if n < 1:
            raise ValueError(f"need at least one env, got {n}")
        if max_steps < 1 or num_lives < 1:
            raise ValueError(f"max_steps and num_lives must be >= 1, got {max_steps} and {num_lives}")
        if (
            state.shape[1] != sizeof(AsteroidsState) or observations.shape[0] != n
            or observations.shape[1] != ASTEROIDS_OBS_SIZE or actions.shape[0] != n or rewards.shape[0] != n
            or terminals.shape[0] != n or truncations.shape[0] != n or final_observations.shape[0] != n
            or final_observations.shape[1] != ASTEROIDS_OBS_SIZE
        ):
            raise ValueError(
                f"buffer shapes do not match {n} envs with {ASTEROIDS_OBS_SIZE} observation floats and "
                f"{sizeof(AsteroidsState)}-byte states: state ({state.shape[0]}, {state.shape[1]}), "
                f"observations ({observations.shape[0]}, {observations.shape[1]}), "
                f"actions ({actions.shape[0]},), rewards ({rewards.shape[0]},), "
                f"terminals ({terminals.shape[0]},), truncations ({truncations.shape[0]},), "
                f"final_observations ({final_observations.shape[0]}, {final_observations.shape[1]})"
            )
        self.state = state
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.truncations = truncations
        self.final_observations = final_observations
        self.envs = <Asteroids*> calloc(n, sizeof(Asteroids))
        if self.envs == NULL:
            raise MemoryError(f"cannot allocate {n} Asteroids structs")
        self.num_envs = <int> n
        cdef Py_ssize_t i
        cdef Asteroids* env
        for i in range(n):
            env = &self.envs[i]
            env.state = <AsteroidsState*> &state[i, 0]
            env.observations = &observations[i, 0]
            env.actions = &actions[i]
            env.rewards = &rewards[i]
            env.terminals = &terminals[i]
            env.truncations = &truncations[i]
            env.final_observations = &final_observations[i, 0]
            env.max_steps = max_steps
            env.num_lives = num_lives
