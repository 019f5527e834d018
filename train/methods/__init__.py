"""The method registry: every method ``train-tsr --model``, ``detect`` and ``compare-methods`` know.

Importing a method's module registers it; adding a method is one new module
here and one line below (``docs/adding-a-method.md``).
"""
from .base import REGISTRY, Method, MethodModule, make_options, method_class, published_numbers, register  # noqa: F401
from . import tsrnet  # noqa: F401,E402  (registers two-stream, srnet, tsrnet-fc1, tsrnet)
from . import stpn  # noqa: F401,E402
from . import untrimmednet  # noqa: F401,E402  (registers untrimmednet-soft, untrimmednet-hard)
from . import ktmgfn  # noqa: F401,E402  (registers mgfn, kt-mgfn)
from . import basnet  # noqa: F401,E402


def method_names() -> tuple[str, ...]:
    return tuple(REGISTRY)
