"""Package-level behaviour: import hygiene, the compiled extension and its diagnostics."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import s4op_kernels
from s4op_kernels import _ext


def _run(code: str) -> subprocess.CompletedProcess:
    # Run from the tests folder, never the repository root, whose source tree has no compiled _C.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=pathlib.Path(__file__).parent)


def test_import_does_not_import_triton_or_initialize_cuda():
    r = _run(
        "import sys, torch, s4op_kernels\n"
        "assert 'triton' not in sys.modules, 'triton imported'\n"
        "s4op_kernels.available_backends()  # finds Triton without importing it\n"
        "assert 'triton' not in sys.modules, 'triton imported by available_backends()'\n"
        "assert not torch.cuda.is_initialized(), 'cuda initialized'\n"
        "print('clean')"
    )
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr


def test_build_info_reports_compiler_flags_simd_threading():
    info = _ext.C().build_info()
    assert set(info) >= {"compiler", "cxx_flags", "simd", "threading", "build_type", "sanitized"}
    assert info["compiler"] and info["simd"] and info["threading"]


def test_info_command_prints_build_and_runtime_facts(tmp_path):
    # cwd outside the source tree: `python -m` puts the cwd first on sys.path.
    r = subprocess.run([sys.executable, "-m", "s4op_kernels.info"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for word in ("torch", "backends", "simd", "threading", "triton", "compiler", "output_mixing", "S4OP_MIXING"):
        assert word in r.stdout
    r = subprocess.run(["s4op", "info"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and "simd" in r.stdout


def test_missing_extension_says_how_to_reinstall():
    # Simulate a missing or broken _C: the error must name the fix.
    r = _run(
        "import sys; sys.modules['s4op_kernels._C'] = None\n"
        "from s4op_kernels import _ext\n"
        "assert not _ext.extension_available()\n"
        "try:\n    _ext.C()\nexcept ImportError as e:\n    print(e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert "pip install" in r.stdout and "_C" in r.stdout


def test_version():
    assert s4op_kernels.__version__


def test_the_library_never_imports_the_application():
    # Dependencies point one way: s4op_kernels.app (the command line's code) imports the library, never the
    # reverse, at module level or inside functions.
    import re

    pkg = pathlib.Path(s4op_kernels.__file__).resolve().parent
    upward = re.compile(r"^\s*(from s4op_kernels\.app\b|import s4op_kernels\.app\b|from s4op_kernels import .*\bapp\b)", re.M)
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if "app" not in p.relative_to(pkg).parts and upward.search(p.read_text())]
    assert not offenders, f"library modules that import the application: {offenders}"
    r = _run("import sys, s4op_kernels, s4op_kernels.pruning, s4op_kernels.training, s4op_kernels.checkpoint, "
             "s4op_kernels.data, s4op_kernels.models, s4op_kernels.runlock\n"
             "print(sorted(m for m in sys.modules if m.startswith('s4op_kernels.app')))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_the_type_stub_matches_the_compiled_module():
    # _C.pyi documents the binding for editors and type checkers; a stale stub (a removed argument, a missing
    # keyword) misleads every reader.  Compare names, parameter names, order and keyword-only markers with
    # the signatures pybind11 writes into each function's docstring.
    import ast
    import re

    if not _ext.extension_available():
        import pytest

        pytest.skip(f"compiled extension unavailable: {_ext.unavailable_reason()}")
    stub = ast.parse((pathlib.Path(s4op_kernels.__file__).parent / "_C.pyi").read_text())
    stubbed = {}

    def stub_functions(body, prefix=""):
        for node in body:
            if isinstance(node, ast.FunctionDef):
                a = node.args
                names = [p.arg for p in a.posonlyargs + a.args]
                stubbed[prefix + node.name] = (names[1:] if prefix else names, [p.arg for p in a.kwonlyargs])
            elif isinstance(node, ast.ClassDef):
                stub_functions(node.body, node.name + ".")

    stub_functions(stub.body)

    def signature(fn, name):
        sig = (fn.__doc__ or "").splitlines()[0]
        params = re.match(rf"{name}\((.*)\) ->", sig).group(1)
        positional, keyword, star = [], [], False
        for part in re.split(r",\s*(?![^\[]*\])", params) if params else []:
            if part.strip() == "*":
                star = True
                continue
            (keyword if star else positional).append(part.split(":")[0].strip())
        return [p for p in positional if p != "self"], keyword

    C = _ext.C()
    compiled = {}
    for name in dir(C):
        fn = getattr(C, name)
        if name.startswith("__") or not callable(fn):
            continue
        if isinstance(fn, type):  # a bound class: its methods, __init__ included
            for meth in dir(fn):
                m = getattr(fn, meth)
                if (meth.startswith("__") and meth != "__init__") or not callable(m) or m.__doc__ is None:
                    continue
                compiled[f"{name}.{meth}"] = signature(m, meth)
            continue
        compiled[name] = signature(fn, name)
    assert set(stubbed) == set(compiled), f"stub-only: {set(stubbed) - set(compiled)}, missing: {set(compiled) - set(stubbed)}"
    for name in compiled:
        assert stubbed[name] == compiled[name], f"{name}: stub {stubbed[name]} != compiled {compiled[name]}"
