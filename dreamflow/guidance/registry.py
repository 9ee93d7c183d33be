"""The registry of guidance methods (threestudio's `register` / `find`).

Every place that needs the list of methods (CLI choices, config validation, the workflow's
wildcard and schema check, the comparisons) asks `available()`, or, without importing torch,
`dreamflow.config.method_names()` (which `register` keeps in step). Adding a method is one module
with a `Guidance` subclass decorated with `@register("name")`, imported in
`dreamflow/guidance/__init__.py`; its recipe is a config class in `dreamflow/config/methods.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from dreamflow.config.methods import add_method

if TYPE_CHECKING:
    from dreamflow.config import GuidanceConfig
    from dreamflow.guidance.base import Guidance
    from dreamflow.priors.base import DiffusionPrior

_METHODS: dict[str, type] = {}
G = TypeVar("G", bound=type)


def register(name: str) -> Callable[[G], G]:
    """Class decorator: make a Guidance subclass selectable as `guidance.method: name`."""

    def decorate(cls: G) -> G:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"guidance method {name!r} is already registered by {_METHODS[name].__qualname__}")
        cls.name = name
        _METHODS[name] = cls
        add_method(name, cls.Config)
        return cls

    return decorate


def available() -> tuple[str, ...]:
    """Names of all registered guidance methods, in registration order. (Importing this module runs
    `dreamflow/guidance/__init__.py` first, which registers the built-in methods.)"""
    return tuple(_METHODS)


def find(name: str) -> type:
    """The Guidance class registered as `name`; an unknown name is an error listing the choices."""
    methods = available()
    if name not in methods:
        raise ValueError(f"unknown guidance method {name!r}; choose one of {list(methods)} "
                         "(a new method is a Guidance subclass decorated with @register in dreamflow/guidance/)")
    return _METHODS[name]


def make_guidance(prior: "DiffusionPrior", config: "GuidanceConfig", iterations: int, seed: int = 0) -> "Guidance":
    """The guidance object for `config.method`, running that method's recipe (`config.recipe()`)."""
    return find(config.method)(prior, config.recipe(), iterations, seed)
