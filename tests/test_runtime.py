import pytest
import torch

from fieldvision.errors import ConfigError
from fieldvision.runtime import resolve_device, resolve_precision


def test_auto_device_matches_availability():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == "cpu"


@pytest.mark.parametrize("bad", ["tpu", "gpu0"])
def test_unknown_device(bad):
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")


def test_precision_is_full_on_cpu_and_explicit_wins():
    assert resolve_precision("cpu") == "32-true"
    assert resolve_precision("cuda", "16-mixed") == "16-mixed"
