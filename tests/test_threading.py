"""Where the CPU engine's parallel sections run: torch's OpenMP threads (default) or the built-in pool."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch

from s4op_kernels import _ext
from s4op_kernels.ops import fft_size, sparse_fftconv
from factories import make_input

OPENMP_TORCH = "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _run(code: str, **env) -> subprocess.CompletedProcess:
    # Run outside the source tree so the installed package (with its _C) is imported.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, cwd=tempfile.gettempdir())


def _conv(H=11, L=300, B=3, seed=4):
    u = make_input(B, H, L, seed, torch.float32)
    g = torch.Generator().manual_seed(seed)
    active = torch.tensor([0, 3, 4, 9])
    n = fft_size(L)
    k_f = torch.randn(len(active), n // 2 + 1, dtype=torch.complex64, generator=g)
    D = torch.randn(len(active), generator=g)  # D of the active channels
    return sparse_fftconv(u, k_f, D, active, n)


@pytest.mark.skipif(not OPENMP_TORCH, reason="this torch build does not use OpenMP")
@pytest.mark.skipif(os.environ.get("S4OP_THREADING", "auto") != "auto", reason="S4OP_THREADING is set")
def test_engine_joins_torchs_openmp_runtime_by_default():
    assert _ext.threading_backend().startswith("OpenMP")


@pytest.mark.skipif(not OPENMP_TORCH, reason="this torch build does not use OpenMP: the engine already runs on its "
                                             "own pool, so the comparison would be of the pool with itself")
@pytest.mark.skipif(os.environ.get("S4OP_THREADING", "auto") == "pool", reason="S4OP_THREADING=pool: both sides would "
                                                                         "run on the pool")
def test_pool_and_host_runtime_give_identical_results():
    C = _ext.C()
    assert _ext.threading_backend().startswith("OpenMP")
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = _conv()
        C.use_builtin_pool()
        assert _ext.threading_backend() == "std::thread pool"
        pooled = _conv()
    finally:
        _ext._configure_threading(C)  # back to what S4OP_THREADING says
        torch.set_num_threads(old)
    assert torch.equal(first, pooled)


def test_env_var_selects_the_builtin_pool():
    r = _run("""
        from s4op_kernels import _ext
        print(_ext.threading_backend())
    """, S4OP_THREADING="pool")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "std::thread pool"


def test_unknown_env_value_warns_and_falls_back_to_auto():
    r = _run("""
        import warnings
        warnings.simplefilter("error")
        from s4op_kernels import _ext
        try:
            _ext.C()
        except RuntimeWarning as w:
            print("warned:", w)
    """, S4OP_THREADING="fibers")
    assert r.returncode == 0, r.stderr
    assert "S4OP_THREADING must be one of" in r.stdout and "'fibers'" in r.stdout


def test_joining_a_runtime_that_is_not_loaded_is_refused():
    C = _ext.C()
    before = C.threading_backend()
    with pytest.raises(ValueError, match="not loaded in this process"):
        C.use_openmp("/nonexistent/libgomp.so.1")
    assert C.threading_backend() == before


def test_forked_child_computes_on_the_builtin_pool():
    # A host runtime's threads do not survive fork(); the child must neither hang nor crash.
    r = _run("""
        import os, torch
        torch.set_num_threads(2)
        from s4op_kernels import _ext
        from s4op_kernels.ops import fft_size, sparse_fftconv
        u = torch.randn(2, 6, 500); k_f = torch.randn(3, fft_size(500) // 2 + 1, dtype=torch.complex64)
        D = torch.randn(3); active = torch.tensor([1, 2, 5])
        ref = sparse_fftconv(u, k_f, D, active, fft_size(500))
        pid = os.fork()
        if pid == 0:
            ok = torch.equal(sparse_fftconv(u, k_f, D, active, fft_size(500)), ref)
            ok = ok and _ext.threading_backend() == "std::thread pool"
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "child 0"
