"""he_core's package namespace: what it says about the native code in use."""
import he_core
from he_core import native


def test_the_public_summary_names_the_paths_in_use():
    assert he_core.kernel_paths() == {"cpu_path": native.cpu_path(), "vector": native.vector_path()}
    assert "kernel_paths" in he_core.__all__


def test_the_summary_follows_a_change_of_path():
    before = native.vector_path()
    try:
        assert native.vector_path("scalar") == "scalar"
        assert he_core.kernel_paths()["vector"] == "scalar"
    finally:
        native.vector_path(before)
