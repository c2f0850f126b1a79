"""``@register`` records functions with their names, parameters, resources and visibility."""

import pytest

import mpreg
from mpreg.registry import Function, Registry


def test_decorator_bare_and_with_arguments():
    r = Registry()

    @r.register
    def add(a, b):
        return a + b

    @r.register(name="train", resources=["gpu"], visibility="host")
    async def train_model(model, *, epochs=1):
        return model

    assert add(1, 2) == 3  # returned unchanged
    assert [f.name for f in r] == ["add", "train"]
    assert r.functions["add"].wire() == {
        "name": "add", "params": ["a", "b"], "resources": [], "visibility": "network"}
    t = r.functions["train"]
    assert t.wire() == {"name": "train", "params": ["model", "epochs"], "resources": ["gpu"],
                        "visibility": "host"}
    assert t.is_async and not r.functions["add"].is_async


def test_bad_registrations():
    with pytest.raises(ValueError, match="visibility"):
        Function.of(lambda: 1, name="x", visibility="node")
    with pytest.raises(TypeError):
        Function.of(3)  # type: ignore[arg-type]


def test_module_level_register_is_the_process_registry():
    assert mpreg.register == mpreg.REGISTRY.register
