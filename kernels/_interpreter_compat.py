"""Keep Triton 3.6's CPU interpreter working with numpy >= 2.4.

The interpreter stores scalars as one-element numpy arrays and converts them with
``int(array)`` when a runtime value bounds a ``range`` loop; numpy 2.4 made that conversion a
TypeError ("only 0-dimensional arrays can be converted to Python scalars"; triton-lang/triton
issue 9171, fixed upstream after 3.6 by converting through a single element). This module applies
the same fix to the interpreter at import time. It touches nothing when the interpreter is off,
so compiled GPU kernels are unaffected, and it is a no-op on Triton versions without the hook.
"""

from __future__ import annotations

from ._backend import interpreter_enabled


def _scalar_index(self) -> int:
    return int(self.handle.data.reshape(-1)[0])


def install() -> None:
    if not interpreter_enabled():
        return
    try:
        from triton.runtime import interpreter
    except ImportError:
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_tritonlm_patched", False):
        return

    def patch_lang_tensor(tensor, scope) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", _scalar_index)

    patch_lang_tensor._tritonlm_patched = True
    interpreter._patch_lang_tensor = patch_lang_tensor
