"""One error tree: every exception class chaosk3s defines lives in
chaosk3s.errors, and the tree drawn in its docstring is the real one."""

import importlib
import inspect
import pkgutil
import re

import chaosk3s
from chaosk3s import errors

# The emulated K3s's own wire failures, named in errors.py's docstring.
OUTSIDE = {"chaosk3s.lab.k3s.apiserver.resources.ApiError",
           "chaosk3s.lab.k3s.kubelet.APIError",
           "chaosk3s.lab.k3s.lb_servers.AllServersFailed"}


def _modules():
    for info in pkgutil.walk_packages(chaosk3s.__path__, "chaosk3s."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def _defined_exceptions():
    for module in _modules():
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and \
                    issubclass(cls, BaseException):
                yield f"{module.__name__}.{cls.__qualname__}", cls


def test_every_exception_class_is_defined_in_errors():
    elsewhere = sorted(name for name, cls in _defined_exceptions()
                       if cls.__module__ != "chaosk3s.errors"
                       and name not in OUTSIDE)
    assert elsewhere == [], (
        "define these in chaosk3s/errors.py and draw them in its docstring")


def _drawn_tree() -> dict[str, str | None]:
    """{class: parent} from the docstring's box drawing."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^( *(?:[│ ]   )*)([├└]── )?([A-Z]\w+)\b", line)
        if not match or not (match.group(2) or
                             match.group(3) == "ChaosK3sError"):
            continue
        depth = len(match.group(1)) // 4 + bool(match.group(2))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(3)] = stack[-1][1] if stack else None
        stack.append((depth, match.group(3)))
    return parents


def test_the_docstring_draws_the_real_hierarchy():
    drawn = _drawn_tree()
    real = {name: cls for name, cls in vars(errors).items()
            if inspect.isclass(cls) and issubclass(cls, Exception)
            and cls.__module__ == "chaosk3s.errors"}
    assert set(drawn) == set(real)
    for name, cls in real.items():
        parent = drawn[name]
        expected = cls.__bases__[0].__name__
        assert (parent or "Exception") == expected, name


def test_every_error_is_a_chaosk3s_error_the_cli_prints_in_one_line():
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, Exception) and \
                cls.__module__ == "chaosk3s.errors":
            assert issubclass(cls, errors.ChaosK3sError), name
