"""The operator library: found, checked, loaded once and quietly, reports what was built."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import mxnet as mx

from gluon_models import ops

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_info_reports_the_build():
    info = ops.info()
    assert info["cpu"] is True and isinstance(info["cuda"], bool)
    assert "Reorder" in info["operators"] and info["mxnet"] == mx.__version__
    assert os.path.isabs(info["path"]) and info["path"].endswith(".so")


def test_loaded_once():
    calls = []
    original = mx.library.load
    mx.library.load = lambda *a, **k: calls.append(a)
    try:
        assert ops.load() is ops.load()
    finally:
        mx.library.load = original
    assert calls == []  # already loaded by the import: a second load would re-register


def test_import_is_quiet_and_idempotent():
    code = "import gluon_models, importlib; importlib.reload(gluon_models); " \
           "import mxnet as mx; print(mx.nd.Reorder(mx.nd.ones((1, 4)), branch_factor=2))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env=dict(os.environ, MXNET_SUBGRAPH_VERBOSE="0"))
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == ""  # no op listing, no warnings


def test_missing_library_says_how_to_build(tmp_path):
    with pytest.raises(ImportError, match="is not built; build it .*pip install -e"):
        saved, ops._INFO = ops._INFO, None
        try:
            ops.load(str(tmp_path / "libgluon_models_ops.so"))
        finally:
            ops._INFO = saved


def test_stale_or_foreign_builds_are_refused():
    built = {"mxnet": mx.__version__, "source_hash": "abc"}
    ops.check_build(built, mx.__version__, "abc")
    ops.check_build(built, mx.__version__, None)  # installed wheel: no sources to compare
    with pytest.raises(ImportError, match="stale .*pip install -e"):
        ops.check_build(built, mx.__version__, "def")
    with pytest.raises(ImportError, match="built against mxnet 1.0.0 but mxnet"):
        ops.check_build({"mxnet": "1.0.0", "source_hash": "abc"}, mx.__version__, "abc")


def test_unloadable_file_is_an_import_error(tmp_path):
    bad = tmp_path / "libbad.so"
    bad.write_bytes(b"not a library")
    saved, ops._INFO = ops._INFO, None
    try:
        with pytest.raises(ImportError, match="cannot open the operator library"):
            ops.load(str(bad))
    finally:
        ops._INFO = saved


def test_source_hash_matches_setup_py():
    """ops.py and setup.py must hash operators/ the same way, or every build looks stale."""
    sys.path.insert(0, ROOT)
    try:
        text = open(os.path.join(ROOT, "setup.py")).read()
        namespace = {"__file__": os.path.join(ROOT, "setup.py"), "__name__": "not_main"}
        exec(text.split("class BuildPyWithOps")[0], namespace)  # helpers only, no setup()
        assert namespace["source_hash"](namespace["operator_sources"]()) == ops._source_hash()
    finally:
        sys.path.remove(ROOT)


SCIPY_BLAS = ops.info()["blas"].startswith("scipy-openblas32 ")


def test_info_reports_the_blas():
    info = ops.info()
    assert info["blas"].startswith(("scipy-openblas32 ", "mxnet libopenblas.so.0"))
    assert isinstance(info["blas_core"], str) and info["blas_core"]
    if SCIPY_BLAS:  # one BLAS thread per call: the operators cut their GEMMs across OpenMP
        assert info["blas_threads"] == 1


@pytest.mark.skipif(not SCIPY_BLAS, reason="built against mxnet's OpenBLAS")
def test_library_links_only_prefixed_blas_symbols():
    if shutil.which("nm") is None:
        pytest.skip("no nm")
    undefined = subprocess.run(["nm", "-D", "--undefined-only", ops.LIB_PATH], check=True,
                               capture_output=True, text=True).stdout.split()
    blas = [s for s in undefined if "blas" in s.lower() or "gemm" in s.lower()]
    assert blas and all(s.startswith("scipy_") for s in blas), blas


@pytest.mark.skipif(not SCIPY_BLAS, reason="built against mxnet's OpenBLAS")
def test_inherited_coretype_is_set_aside_and_restored():
    code = ("import os, json, gluon_models; i = gluon_models.ops.info(); "
            "print(json.dumps([os.environ.get('OPENBLAS_CORETYPE'), i['blas_core'], "
            "i['blas_coretype_set_aside'], i['blas_coretype_forced']]))")
    env = dict(os.environ, MXNET_SUBGRAPH_VERBOSE="0", OPENBLAS_CORETYPE="Nehalem")
    env.pop(ops.CORETYPE_VAR, None)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    kept, core, aside, forced = json.loads(run.stdout.strip().splitlines()[-1])
    assert kept == "Nehalem" and aside == "Nehalem" and forced is None
    assert core != "Nehalem"  # OpenBLAS detected this CPU (newer than a 2008 Nehalem) itself
    env[ops.CORETYPE_VAR] = "Nehalem"  # forcing a core type for the operators' OpenBLAS
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ["Nehalem", "Nehalem", None,
                                                               "Nehalem"]
