"""he_core.native: status codes become named errors, the cdef comes from the one public header,
and the CPU path the kernels run is reported."""
import os
import platform
import re

import pytest

from he_core import native
from he_core.errors import NativeError

CSRC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "csrc")
HEADER = os.path.join(CSRC, "he_core.h")
NAMES = {"HE_ERR_ARGUMENT": native.NativeArgumentError, "HE_ERR_OVERFLOW": native.NativeOverflowError,
         "HE_ERR_SCRATCH": native.ScratchError, "HE_ERR_RANGE": native.NativeRangeError,
         "HE_ERR_NULL": native.NullPointerError, "HE_ERR_DIMENSION": native.DimensionMismatchError}


@pytest.mark.parametrize("module", ["ckks", "vhe"])
def test_status_codes_match_the_header_and_map_to_named_errors(module):
    lib = native.load(module).lib
    assert lib.HE_OK == 0
    assert {getattr(lib, name) for name in NAMES} == set(native.STATUS)
    for name, cls in NAMES.items():
        with pytest.raises(cls, match=r"^cannot frobnicate: ") as info:
            native.check(getattr(lib, name), "frobnicate")
        assert isinstance(info.value, NativeError)
    native.check(lib.HE_OK, "frobnicate")
    with pytest.raises(NativeError, match="unknown status 99"):
        native.check(99, "frobnicate")


def test_wrong_arguments_are_value_errors():
    for cls in (native.NativeArgumentError, native.NullPointerError, native.ScratchError,
                native.DimensionMismatchError, native.NativeRangeError):
        assert issubclass(cls, ValueError) and issubclass(cls, NativeError)
    assert issubclass(native.NativeOverflowError, OverflowError)


def _declared(text):
    """Names of the functions a C text declares or defines with external linkage."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.findall(r"^(?!static)[A-Za-z_][\w \*]*?\b((?:ckks|vhe)_\w+)\s*\(", text, flags=re.M)


def test_the_public_api_is_declared_once_in_the_one_header():
    header = open(HEADER, encoding="utf-8").read()
    public = _declared(header)
    assert len(public) == len(set(public))
    for lib_name in ("ckks", "vhe"):
        lib = native.load(lib_name).lib
        for name in public:
            if name.startswith(lib_name + "_"):
                assert hasattr(lib, name), name  # the cdef is the header's section
    for path in os.listdir(CSRC):
        if path.endswith(".h") and path != "he_core.h":
            text = open(os.path.join(CSRC, path), encoding="utf-8").read()
            assert "CDEF-BEGIN" not in text, path
            assert not set(_declared(text)) & set(public), f"{path} re-declares public functions"


def test_cpu_path_is_reported():
    path = native.cpu_path()
    assert path in ("x86-64-v4", "x86-64-v3", "default", "native")
    if platform.machine() not in ("x86_64", "AMD64"):
        assert path in ("default", "native")


def test_the_dispatch_never_picks_an_isa_the_cpu_lacks():
    path = native.cpu_path()
    try:
        flags = next(line for line in open("/proc/cpuinfo", encoding="ascii") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags to compare with")
    if "avx512f" not in flags:
        assert path != "x86-64-v4"
    if "avx2" not in flags:
        assert path not in ("x86-64-v3", "x86-64-v4")


def _build_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_native", os.path.join(CSRC, "build_native.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_default_build_is_portable(monkeypatch):
    build = _build_script()
    monkeypatch.delenv("HENN_NATIVE", raising=False)
    flags = build.compile_flags()
    assert not any(f.startswith(("-march", "-mtune")) for f in flags)
    assert "-fno-strict-aliasing" not in flags
    monkeypatch.setenv("HENN_NATIVE", "1")
    assert "-march=native" in build.compile_flags()
    assert "int ckks_ntt(" in build.module_cdef("ckks") and "vhe_" not in build.module_cdef("ckks")


def test_signed_overflow_is_not_defined_away(monkeypatch):
    """Python's CFLAGS carry -fwrapv; the kernels' flags come after them and undo it, so a
    signed overflow the checks missed is reported by a HENN_SANITIZE=1 build, not wrapped."""
    monkeypatch.delenv("HENN_NATIVE", raising=False)
    flags = _build_script().compile_flags()
    assert "-fno-wrapv" in flags and "-fwrapv" not in flags
