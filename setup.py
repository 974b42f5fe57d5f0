"""Build and install gluon-models.

The native operators in ``operators/`` are compiled against the headers of the *installed*
mxnet wheel (its ``include/mxnet/lib_api.h`` and ``src/lib_api.cc``) into one shared library,
``gluon_models/libgluon_models_ops.so``, which ``import gluon_models`` loads. When ``nvcc`` is
on the PATH the CUDA kernels (``operators/*_kernels.cu``) are compiled into the same library
(set ``GLUON_MODELS_CUDA=0`` to skip them, ``=1`` to require them). Objects are cached in
``build/ops/`` so a rebuild only recompiles what changed.

The CPU GEMMs call the OpenBLAS of the ``scipy-openblas32`` wheel (pinned below and in
pyproject.toml; its symbols carry the prefix ``scipy_``), linked by path with an rpath to its
``lib/`` folder. If it is not installed at build time the library falls back to the OpenBLAS of
the mxnet wheel (``GLUON_MODELS_BLAS=scipy-openblas`` requires the former, ``=mxnet`` picks the
latter); the choice is recorded in the build info (``gluon_models.ops.info()["blas"]``).
"""
import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sysconfig

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_NAME = "libgluon_models_ops.so"
# The BLAS of the CPU operators (also pinned in pyproject.toml and requirements.txt).
SCIPY_OPENBLAS = "scipy-openblas32==0.3.34.481.3"
# Architectures nvcc 13 supports (sm_75 and newer), plus PTX for later GPUs.
CUDA_ARCH = ["-gencode", "arch=compute_75,code=sm_75", "-gencode", "arch=compute_80,code=sm_80",
             "-gencode", "arch=compute_86,code=sm_86", "-gencode", "arch=compute_89,code=sm_89",
             "-gencode", "arch=compute_90,code=sm_90", "-gencode", "arch=compute_90,code=compute_90"]


def operator_sources():
    """All files that go into the library, in a fixed order (also hashed into the build)."""
    files = []
    for pattern in ("*.h", "*.cc", "*.cu"):
        files += sorted(glob.glob(os.path.join(HERE, "operators", pattern)))
    return files


def source_hash(files):
    h = hashlib.sha256()
    for f in files:
        h.update(os.path.basename(f).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


def mxnet_dir():
    spec = importlib.util.find_spec("mxnet")  # locates mxnet without importing it
    if spec is None:
        raise RuntimeError("mxnet must be installed before building gluon-models "
                           "(pip install -r requirements.txt, then pip install -e .)")
    return list(spec.submodule_search_locations)[0]


def scipy_openblas():
    """(include dir, lib dir, library file name, version) of scipy-openblas32, or None.

    Located with importlib without importing it (its ``__init__`` loads the library).
    """
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg = list(spec.submodule_search_locations)[0]
    libs = sorted(glob.glob(os.path.join(pkg, "lib", "libscipy_openblas*.so")))
    if not libs or not os.path.exists(os.path.join(pkg, "include", "cblas.h")):
        return None
    return (os.path.join(pkg, "include"), os.path.join(pkg, "lib"), os.path.basename(libs[0]),
            importlib.metadata.version("scipy-openblas32"))


def blas_choice():
    """What :func:`scipy_openblas` returns if the library links it, None for mxnet's OpenBLAS."""
    flag = os.environ.get("GLUON_MODELS_BLAS", "auto")
    if flag not in ("auto", "scipy-openblas", "mxnet"):
        raise RuntimeError("GLUON_MODELS_BLAS must be auto, scipy-openblas or mxnet, got %r" % flag)
    found = scipy_openblas() if flag != "mxnet" else None
    if flag == "scipy-openblas" and found is None:
        raise RuntimeError("GLUON_MODELS_BLAS=scipy-openblas but scipy-openblas32 is not installed "
                           "(pip install %s)" % SCIPY_OPENBLAS)
    if found is None and flag == "auto":
        print("gluon-models: scipy-openblas32 not found, linking the OpenBLAS of the mxnet "
              "wheel (slower GEMMs; pip install %s and rebuild)" % SCIPY_OPENBLAS, flush=True)
    return found


def want_cuda():
    flag = os.environ.get("GLUON_MODELS_CUDA", "auto")
    have = shutil.which("nvcc") is not None
    if flag == "1" and not have:
        raise RuntimeError("GLUON_MODELS_CUDA=1 but nvcc is not on the PATH")
    return have and flag != "0"


def cuda_home(nvcc):
    """CUDA_HOME, else the toolkit that holds libcudart_static.a near nvcc, else /usr/local/cuda."""
    candidates = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""),
                  os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"]
    for c in candidates:
        if c and os.path.exists(os.path.join(c, "lib64", "libcudart_static.a")):
            return c
    raise RuntimeError("nvcc found but no CUDA toolkit with lib64/libcudart_static.a; "
                       "set CUDA_HOME, or GLUON_MODELS_CUDA=0 to build without CUDA")


def run(cmd):
    print(" ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def compile_if_stale(src, obj, cmd, deps):
    if os.path.exists(obj) and os.path.getmtime(obj) >= max(os.path.getmtime(d) for d in deps):
        return
    run(cmd + ["-o", obj])


def build_library(out_dir, editable=False):
    mx = mxnet_dir()
    cxx = os.environ.get("CXX", "g++")
    cuda = want_cuda()
    sob = blas_choice()
    sources = operator_sources()
    headers = [f for f in sources if f.endswith(".h")]
    obj_dir = os.path.join(HERE, "build", "ops")
    os.makedirs(obj_dir, exist_ok=True)

    info = {"source_hash": source_hash(sources), "mxnet": importlib.metadata.version("mxnet"),
            "cuda": cuda,
            "blas": "scipy-openblas32 " + sob[3] if sob else "mxnet libopenblas.so.0"}
    info_h = os.path.join(obj_dir, "gm_build_info.h")
    text = "#define GM_BUILD_INFO %s\n" % json.dumps(json.dumps(info, sort_keys=True))
    if not os.path.exists(info_h) or open(info_h).read() != text:
        with open(info_h, "w") as fh:
            fh.write(text)

    # -fmacro-prefix-map keeps error messages (which quote __FILE__) free of build paths.
    cxxflags = ["-O3", "-fPIC", "-std=c++17", "-fopenmp", "-fmacro-prefix-map=%s/=" % HERE, "-I", os.path.join(mx, "include"),
                "-I", os.path.join(HERE, "operators"), "-I", obj_dir]
    if cuda:
        cxxflags.append("-DGM_WITH_CUDA")
    if sob:
        cxxflags += ["-DGM_BLAS_SCIPY_OPENBLAS", "-I", sob[0]]
    objects = []
    lib_api = os.path.join(mx, "src", "lib_api.cc")
    obj = os.path.join(obj_dir, "lib_api.o")
    # lib_api.cc warns under -Wall; it is MXNet's file, compiled as shipped.
    compile_if_stale(lib_api, obj, [cxx] + cxxflags + ["-c", lib_api], [lib_api])
    objects.append(obj)
    for src in [f for f in sources if f.endswith(".cc")]:
        obj = os.path.join(obj_dir, os.path.basename(src)[:-3] + (".cuda.o" if cuda else ".o"))
        compile_if_stale(src, obj, [cxx] + cxxflags + ["-Wall", "-c", src],
                         [src, info_h] + headers)
        objects.append(obj)
    link = ["-fopenmp"]
    if cuda:
        nvcc = shutil.which("nvcc")
        for src in [f for f in sources if f.endswith(".cu")]:
            obj = os.path.join(obj_dir, os.path.basename(src)[:-3] + ".cu.o")
            compile_if_stale(src, obj, [nvcc, "-O3", "-std=c++17", "-Xcompiler", "-fPIC"]
                             + CUDA_ARCH + ["-I", os.path.join(HERE, "operators"), "-c", src],
                             [src] + headers)
            objects.append(obj)
        cuda_lib = os.path.join(cuda_home(nvcc), "lib64")
        link += ["-L", cuda_lib, "-lcudart_static", "-ldl", "-lrt", "-lpthread"]
    if sob:
        # scipy-openblas32, found at run time through the rpath: next to the installed package
        # (site-packages/scipy_openblas32/lib). An editable build leaves the library in the
        # source tree, so it also gets absolute paths: the site-packages of the interpreter
        # that builds it (where pip installs the pinned scipy-openblas32; with build isolation
        # the copy linked against lives in a temporary build environment) and that copy's.
        link += ["-L", sob[1], "-l:" + sob[2], "-Wl,-rpath,$ORIGIN/../scipy_openblas32/lib"]
        if editable:
            site = os.path.join(sysconfig.get_paths()["purelib"], "scipy_openblas32", "lib")
            for path in dict.fromkeys([site, sob[1]]):
                link.append("-Wl,-rpath," + path)
    else:
        # OpenBLAS from the mxnet wheel (already loaded by libmxnet under this SONAME).
        link += ["-L", mx, "-l:libopenblas.so.0"]
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, LIB_NAME)
    tmp = target + ".tmp"
    run([cxx, "-shared", "-o", tmp] + objects + link + ["-Wl,--no-undefined"])
    os.replace(tmp, target)  # never leave a half-written library behind


class BuildPyWithOps(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        if editable:
            out = os.path.join(HERE, "gluon_models")
        else:
            out = os.path.join(self.build_lib, "gluon_models")
        build_library(out, editable)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True  # platform wheel: it carries a compiled library


setup(
    name="gluon-models",
    version="0.1.0",
    description="Structured and second-order CNN modules (FBN, IGC, MPN-COV, IBN-Net, GM-SOP) "
                "for MXNet 1.9 Gluon, with native operators",
    packages=find_packages(include=["gluon_models", "gluon_models.*"]),
    python_requires=">=3.8",
    install_requires=["mxnet==1.9.1", "gluoncv==0.10.5.post0", "numpy<1.24",
                      "opencv-python", SCIPY_OPENBLAS],
    cmdclass={"build_py": BuildPyWithOps},
    distclass=BinaryDistribution,
    zip_safe=False,
)
