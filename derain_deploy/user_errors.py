"""The errors a user can cause (a bad spec, model, input, output or export), which every CLI
(derain-run, -bench, -eval, -serve, -demo, -export) shows as one ``error: ...`` line and a
non-zero exit, never a traceback. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import functools


@functools.cache
def _shared() -> tuple[type[BaseException], ...]:
    from .backend_spec import SpecError
    from .backends.base import BackendError
    from .bench.report import BenchError
    from .output_guard import OutputGuardError
    from .pairs import LayoutError
    from .streams.base import StreamError
    from .weights import WeightsError

    errors: list[type[BaseException]] = [
        SpecError, BackendError, StreamError, WeightsError, OutputGuardError, LayoutError, BenchError, OSError
    ]  # fmt: skip
    try:  # the builder needs onnx and onnxruntime; without them its errors cannot happen
        from .build.onnx_export import ExportError
        from .build.profiles import ProfileError
        from .build.verify import ParityError

        errors += [ExportError, ParityError, ProfileError]
    except ImportError:
        pass
    return tuple(errors)


def user_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The shared classes, then a CLI's own ``extra`` (``EvalError``, ``ServeError``, ``ValueError``
    where a CLI's library reports bad values with it). Imports lazily: use it in the ``except``."""
    return (*_shared(), *extra)
