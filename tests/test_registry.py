import pytest

from fieldvision.errors import ConfigError
from fieldvision.registry import Registry


def test_register_get_and_list():
    reg: Registry = Registry("thing")

    @reg.register("b")
    def b():
        return "b"

    @reg.register("a")
    def a():
        return "a"

    assert reg.names() == ["a", "b"]
    assert reg.get("b")() == "b"
    assert "a" in reg and "c" not in reg


def test_unknown_name_lists_choices_and_duplicates_are_refused():
    reg: Registry = Registry("loss")
    reg.register("mse")(object)
    with pytest.raises(ConfigError, match="unknown loss 'mae'; choose one of: mse"):
        reg.get("mae")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("mse")(object)
