# The part of every env binding that does not depend on the env: included by <env>/<env>.pyx with
#   include "../thrust_binding.pxi"
# after the binding has declared, from its C header,
#   Log        the episode statistics, a struct of double counters with the episode count `n` last;
#   EnvT       (a ctypedef of) the struct one C call steps: one env, or one Snake board, with a `Log log` field;
#   c_seed(EnvT*, uint64_t), c_reset(EnvT*), c_step_all(EnvT*, int);
# and ENV_NAME, the env's name for error messages. Cython allows `include` only at module level, so this defines
# a base class, CoreBase, that each module compiles for its own EnvT; the binding subclasses it with a
# __cinit__ that checks the buffers, allocates `envs` and points them into the buffers.

from libc.stdint cimport uint64_t
from libc.stdlib cimport free


cdef class CoreBase:
    """The C structs of one binding object: seeds, resets, steps and reads the statistics of all of them."""

    cdef EnvT* envs
    cdef int num_envs

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        """Free what __cinit__ allocated (a subclass that allocates more frees it too, then calls this)."""
        free(self.envs)
        self.envs = NULL

    cdef int _check_open(self) except -1:
        if self.envs == NULL:
            raise RuntimeError(f"{ENV_NAME} is closed")
        return 0

    def seed(self, seed):
        """Seed struct i's PRNG with ``seed + i`` (mod 2**64). Draws nothing."""
        self._check_open()
        cdef uint64_t base = <uint64_t> (int(seed) & 0xFFFFFFFFFFFFFFFF)
        cdef int i
        for i in range(self.num_envs):
            c_seed(&self.envs[i], base + <uint64_t> i)

    def reset(self):
        """Start a new episode in every struct from its PRNG; writes the env's state and ``observations``."""
        self._check_open()
        cdef int i
        with nogil:
            for i in range(self.num_envs):
                c_reset(&self.envs[i])

    def step(self):
        """Step every agent once with the actions in the buffer (auto-resetting ended episodes), without the
        GIL."""
        self._check_open()
        with nogil:
            c_step_all(self.envs, self.num_envs)

    def log(self):
        """Sums over structs of each ``Log`` counter since the last call, in the struct's field order (the
        episode count last), e.g. ``(sum of returns, sum of lengths, episode count)``; then zero them."""
        self._check_open()
        # Log is a struct of doubles: read it as an array, as PufferLib's bindings do.
        cdef Py_ssize_t num_fields = sizeof(Log) // sizeof(double)
        cdef Py_ssize_t k
        cdef int i
        cdef double total
        cdef double* counters
        sums = []
        for k in range(num_fields):
            total = 0.0
            for i in range(self.num_envs):
                counters = <double*> &self.envs[i].log
                total += counters[k]
                counters[k] = 0.0
            sums.append(total)
        return tuple(sums)

    def close(self):
        """Free the structs (the buffers stay with their owners). Idempotent."""
        self._free()
