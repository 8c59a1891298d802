# Compiler directives (boundscheck, wraparound, cdivision, initializedcheck) are set in setup.py.
"""C loops of :mod:`thrust_cli.learn.advantage`: GAE and V-trace over 2-D C-contiguous float32/float64 arrays.

Use :func:`thrust_cli.learn.advantage.gae` / :func:`thrust_cli.learn.advantage.vtrace`, which take torch tensors of any shape
and layout and call these. Each array here is either row-major [R, T] (a row is one trajectory, time contiguous)
or time-major [T, R] (``time_major=True``: the ``.T`` of a rollout buffer, read without a copy). Rows are
independent; the loops run without the GIL, single-threaded (OpenMP over rows halved the time on two idle cores
but was 10-25× slower while another process held one: docs/performance.md). The arithmetic is done in the
arrays' precision and in the order of the torch reference, so both paths give the same numbers.
"""

from cython cimport floating
from libc.stdlib cimport calloc, free


cdef inline floating _min(floating a, floating b) noexcept nogil:
    return a if a < b else b


cdef inline floating _gae_step(
    floating r,
    floating v,
    floating nv,
    unsigned char terminal,
    unsigned char done,
    floating gamma,
    floating gamma_lambda,
    floating acc,
) noexcept nogil:
    """A_t from A_{t+1} = ``acc``."""
    cdef floating not_terminal = 0 if terminal else 1
    cdef floating not_done = 0 if done else 1
    return ((r + (gamma * not_terminal) * nv) - v) + (gamma_lambda * not_done) * acc


cdef inline floating _vtrace_step(
    floating r,
    floating v,
    floating nv,
    unsigned char terminal,
    unsigned char done,
    floating rho,
    floating gamma,
    floating gae_lambda,
    floating gamma_lambda,
    floating rho_bar,
    floating c_bar,
    floating rho_pg_bar,
    floating acc,
    floating* pg_advantage,
) noexcept nogil:
    """acc_t = v_t - V(s_t) from acc_{t+1} = ``acc``; writes the policy-gradient advantage of step t."""
    cdef floating discount = gamma * (0 if terminal else 1)
    cdef floating not_done = 0 if done else 1
    cdef floating q = nv + (gae_lambda * not_done) * acc
    pg_advantage[0] = _min(rho_pg_bar, rho) * ((r + discount * q) - v)
    return _min(rho_bar, rho) * ((r + discount * nv) - v) + ((gamma_lambda * _min(c_bar, rho)) * not_done) * acc


cdef inline bint _same_shape(Py_ssize_t* a, Py_ssize_t* b) noexcept:
    return a[0] == b[0] and a[1] == b[1]


def gae(
    const floating[:, ::1] rewards,
    const floating[:, ::1] values,
    const floating[:, ::1] next_values,
    const unsigned char[:, ::1] terminals,
    const unsigned char[:, ::1] dones,
    double gamma,
    double gae_lambda,
    floating[:, ::1] advantages,
    floating[:, ::1] returns,
    bint time_major=False,
):
    """GAE of every trajectory; writes ``advantages`` and ``returns`` in place.

    Args:
        rewards, values, next_values: [R, T] (or [T, R] if ``time_major``) float32 or float64, one dtype.
        terminals, dones: same shape, uint8 (a ``.view(uint8)`` of a bool array), nonzero meaning true.
        gamma, gae_lambda: as in :func:`thrust_cli.learn.advantage.gae`.
        advantages, returns: outputs, same shape and dtype.
        time_major: the arrays are [T, R].

    Raises:
        ValueError: the arrays' shapes differ.
        MemoryError: no memory for the R running sums of the time-major loop.
    """
    cdef Py_ssize_t* shape = values.shape
    if not (_same_shape(rewards.shape, shape) and _same_shape(next_values.shape, shape)
            and _same_shape(terminals.shape, shape) and _same_shape(dones.shape, shape)
            and _same_shape(advantages.shape, shape) and _same_shape(returns.shape, shape)):
        raise ValueError("gae: all arrays need the shape of values")
    cdef Py_ssize_t T = shape[0] if time_major else shape[1]
    cdef Py_ssize_t R = shape[1] if time_major else shape[0]
    if R == 0 or T == 0:
        return
    cdef floating g = <floating>gamma, gl = <floating>(gamma * gae_lambda), a
    cdef floating* acc
    cdef Py_ssize_t i, t
    if not time_major:
        with nogil:
            for i in range(R):
                a = 0
                for t in range(T - 1, -1, -1):
                    a = _gae_step(rewards[i, t], values[i, t], next_values[i, t], terminals[i, t], dones[i, t],
                                  g, gl, a)
                    advantages[i, t] = a
                    returns[i, t] = a + values[i, t]
        return
    acc = <floating*>calloc(R, sizeof(floating))
    if acc == NULL:
        raise MemoryError()
    with nogil:
        for t in range(T - 1, -1, -1):
            for i in range(R):
                a = _gae_step(rewards[t, i], values[t, i], next_values[t, i], terminals[t, i], dones[t, i],
                              g, gl, acc[i])
                acc[i] = a
                advantages[t, i] = a
                returns[t, i] = a + values[t, i]
    free(acc)


def vtrace(
    const floating[:, ::1] rewards,
    const floating[:, ::1] values,
    const floating[:, ::1] next_values,
    const unsigned char[:, ::1] terminals,
    const unsigned char[:, ::1] dones,
    const floating[:, ::1] ratios,
    double gamma,
    double gae_lambda,
    double rho_bar,
    double c_bar,
    double rho_pg_bar,
    floating[:, ::1] pg_advantages,
    floating[:, ::1] value_targets,
    bint time_major=False,
):
    """V-trace of every trajectory; writes ``pg_advantages`` and ``value_targets`` in place.

    Args:
        rewards, values, next_values: [R, T] (or [T, R] if ``time_major``) float32 or float64, one dtype.
        terminals, dones: same shape, uint8, nonzero meaning true.
        ratios: pi(a_t|s_t) / mu(a_t|s_t), unclipped (torch computes the exp, vectorized, before the call).
        gamma, gae_lambda, rho_bar, c_bar, rho_pg_bar: as in :func:`thrust_cli.learn.advantage.vtrace`.
        pg_advantages, value_targets: outputs, same shape and dtype.
        time_major: the arrays are [T, R].

    Raises:
        ValueError: the arrays' shapes differ.
        MemoryError: no memory for the R running sums of the time-major loop.
    """
    cdef Py_ssize_t* shape = values.shape
    if not (_same_shape(rewards.shape, shape) and _same_shape(next_values.shape, shape)
            and _same_shape(terminals.shape, shape) and _same_shape(dones.shape, shape)
            and _same_shape(ratios.shape, shape) and _same_shape(pg_advantages.shape, shape)
            and _same_shape(value_targets.shape, shape)):
        raise ValueError("vtrace: all arrays need the shape of values")
    cdef Py_ssize_t T = shape[0] if time_major else shape[1]
    cdef Py_ssize_t R = shape[1] if time_major else shape[0]
    if R == 0 or T == 0:
        return
    cdef floating g = <floating>gamma, lam = <floating>gae_lambda, gl = <floating>(gamma * gae_lambda)
    cdef floating rb = <floating>rho_bar, cb = <floating>c_bar, pb = <floating>rho_pg_bar, a
    cdef floating* acc
    cdef Py_ssize_t i, t
    if not time_major:
        with nogil:
            for i in range(R):
                a = 0
                for t in range(T - 1, -1, -1):
                    a = _vtrace_step(rewards[i, t], values[i, t], next_values[i, t], terminals[i, t],
                                     dones[i, t], ratios[i, t], g, lam, gl, rb, cb, pb, a, &pg_advantages[i, t])
                    value_targets[i, t] = values[i, t] + a
        return
    acc = <floating*>calloc(R, sizeof(floating))
    if acc == NULL:
        raise MemoryError()
    with nogil:
        for t in range(T - 1, -1, -1):
            for i in range(R):
                a = _vtrace_step(rewards[t, i], values[t, i], next_values[t, i], terminals[t, i], dones[t, i],
                                 ratios[t, i], g, lam, gl, rb, cb, pb, acc[i], &pg_advantages[t, i])
                acc[i] = a
                value_targets[t, i] = values[t, i] + a
    free(acc)
