"""vtopt — Python bindings for models compiled by vtopt (fast.so, C ABI include/vtopt/model.h) and
a wrapper of the vtopt compiler. Pure Python: ctypes and numpy.

    import vtopt, numpy as np
    m = vtopt.compile("vit.onnx", passes="tome:r=8", out="vit.so", dims={"batch": 1})
    s = m.session(threads=2)
    (logits,) = s.run(np.zeros(m.inputs[0].shape, np.float32))
"""
from .model import (Model, Session, TensorSpec, Error, InputError, DtypeError, SessionBusyError, load)
from .compiler import CompileError, compile, find_cli

__version__ = "0.1.0"
__all__ = ["Model", "Session", "TensorSpec", "Error", "InputError", "DtypeError", "SessionBusyError",
           "CompileError", "load", "compile", "find_cli"]
