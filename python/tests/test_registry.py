"""``@register`` records functions; ``Function.bind`` undoes the node's positional mapping."""

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


def test_bind_restores_defaults_and_keyword_only():
    def scale(x, factor=1, offset=0, *, clamp=None, unit="m"):
        return x

    f = Function.of(scale)
    assert f.params == ["x", "factor", "offset", "clamp", "unit"]
    # What the node sends for scale(2, factor=3): every param, nulls for the rest.
    assert f.bind([2, 3, None, None, None], {}) == ([2, 3], {})
    assert f.bind([2, None, 5, None, "cm"], {}) == ([2, None, 5], {"unit": "cm"})
    assert f.bind([2], {"factor": 4}) == ([2], {"factor": 4})  # kwargs as the contract says
    # A required parameter given null stays null.
    assert f.bind([None], {}) == ([None], {})


def test_bind_leaves_varargs_alone():
    def many(*xs):
        return xs

    f = Function.of(many)
    assert f.params == []
    assert f.bind([1, None], {}) == ([1, None], {})


def test_module_level_register_is_the_process_registry():
    assert mpreg.register == mpreg.REGISTRY.register
