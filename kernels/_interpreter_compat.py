"""Fixes to Triton's CPU interpreter (3.6 through the newest release), applied by ``_ops.launch``
before the first interpreted launch (never at import, never when the interpreter is off).

1. numpy >= 2.4. The interpreter stores scalars as one-element numpy arrays and converts them
   with ``int(array)`` when a runtime value bounds a ``range`` loop; numpy 2.4 made that a
   TypeError ("only 0-dimensional arrays can be converted to Python scalars"; triton-lang/triton
   issue 9171, fixed upstream after 3.6 by converting through one element). Same fix here.
2. ``tl.dot`` on bfloat16. The interpreter stores bfloat16 as raw uint16 bits and multiplies
   those bits as integers, so every bfloat16 matmul returns garbage. The fix widens bfloat16
   operands to float32 (exact: bfloat16 is the top half of a float32) before the matmul.
3. Boolean masks built from a scalar comparison. The interpreter types ``row < n_rows`` by its
   operands (int32) while holding booleans, so ``block_mask & (row < n_rows)`` is splatted into
   an int32 array. Triton 3.6 loads and stores accept that; from 3.7 the compiled helpers behind
   masked loads and stores reject it ("mask has unsupported dtype"). On a GPU every mask is i1,
   so the fix turns such masks back into booleans before a load or store.

Nothing is touched when the interpreter is off, so compiled GPU kernels are unaffected, and each
fix is skipped on Triton versions without the patched hook.
"""

from __future__ import annotations

import numpy as np

from ._backend import interpreter_enabled


def _scalar_index(self) -> int:
    return int(self.handle.data.reshape(-1)[0])


def _bf16_bits_to_float32(data: np.ndarray) -> np.ndarray:
    return (data.astype(np.uint32) << 16).view(np.float32)


def _patch_bf16_dot(interpreter) -> None:
    import triton.language as tl

    builder = getattr(interpreter, "InterpreterBuilder", None)
    original = getattr(builder, "create_dot", None)
    if original is None or getattr(original, "_tritonlm_patched", False):
        return

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        if a.dtype == tl.bfloat16:
            a = interpreter.TensorHandle(_bf16_bits_to_float32(a.data), tl.float32)
        if b.dtype == tl.bfloat16:
            b = interpreter.TensorHandle(_bf16_bits_to_float32(b.data), tl.float32)
        return original(self, a, b, d, input_precision, max_num_imprecise_acc)

    create_dot._tritonlm_patched = True
    builder.create_dot = create_dot


def _patch_bool_masks(interpreter) -> None:
    import triton.language as tl

    builder = getattr(interpreter, "InterpreterBuilder", None)
    for name, mask_position in (("create_masked_load", 1), ("create_masked_store", 2)):
        original = getattr(builder, name, None)
        if original is None or getattr(original, "_tritonlm_patched", False):
            continue

        def with_bool_mask(self, *args, _original=original, _at=mask_position, **kwargs):
            mask = args[_at]
            if mask.data.dtype != np.bool_:
                args = (*args[:_at], interpreter.TensorHandle(mask.data != 0, tl.int1), *args[_at + 1:])
            return _original(self, *args, **kwargs)

        with_bool_mask._tritonlm_patched = True
        setattr(builder, name, with_bool_mask)


_installed = False


def install() -> None:
    """Patch the interpreter once (idempotent; each patch is marked, so a second copy of this
    module would not stack its patches on the first)."""
    global _installed
    if _installed or not interpreter_enabled():
        return
    _installed = True
    try:
        from triton.runtime import interpreter
    except ImportError:
        return
    _patch_bf16_dot(interpreter)
    _patch_bool_masks(interpreter)
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_tritonlm_patched", False):
        return

    def patch_lang_tensor(tensor, scope) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", _scalar_index)

    patch_lang_tensor._tritonlm_patched = True
    interpreter._patch_lang_tensor = patch_lang_tensor
