"""model.py — a compiled model (fast.so) through its C ABI (include/vtopt/model.h) with ctypes:
the library and its signature (Model), sessions with numpy arrays in and out (Session), and
streams (Session.stream: an iterator over frames)."""
import ctypes
import json
import os

import numpy as np

from . import _elf

MAX_RANK = 8
OK, ERR_INPUT, ERR_INTERNAL, ERR_BUSY = 0, 2, 3, 4

# signature dtype names (vt_dtype_name) -> (ONNX TensorProto number, numpy dtype or None)
_DTYPES = {
    "f32": (1, np.float32), "u8": (2, np.uint8), "i8": (3, np.int8), "u16": (4, np.uint16),
    "i16": (5, np.int16), "i32": (6, np.int32), "i64": (7, np.int64), "bool": (9, np.bool_),
    "f16": (10, np.float16), "f64": (11, np.float64), "u32": (12, np.uint32), "u64": (13, np.uint64),
    "bf16": (16, None),
}


class Error(RuntimeError):
    """A failed call into vtopt or a fast.so; .code is the ABI's error code (2 bad input, 3 internal)."""

    def __init__(self, message, code=ERR_INTERNAL):
        super().__init__(message)
        self.code = code


class InputError(Error, ValueError):
    """Inputs that do not match the model's signature (count, names, ranks, dims)."""

    def __init__(self, message):
        super().__init__(message, ERR_INPUT)


class DtypeError(InputError, TypeError):
    """An input array of the wrong dtype."""


class SessionBusyError(Error):
    """The session is running on another thread (one session serves one thread at a time)."""

    def __init__(self, message):
        super().__init__(message, ERR_BUSY)


class _Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("dims", ctypes.c_int64 * MAX_RANK), ("data", ctypes.c_void_p),
                ("owned_by_library", ctypes.c_bool)]


class TensorSpec:
    """One input or output of the signature: name, dtype name ("f32", ...), numpy dtype, shape."""

    def __init__(self, d):
        self.name = d["name"]
        self.dtype_name = d["dtype"]
        if self.dtype_name not in _DTYPES:
            raise Error("unknown dtype %r in the model's signature" % self.dtype_name)
        self.onnx_dtype, self.dtype = _DTYPES[self.dtype_name]
        self.shape = tuple(int(x) for x in d["dims"])

    def __repr__(self):
        return "TensorSpec(%r, %s, %s)" % (self.name, self.dtype_name, list(self.shape))


class Model:
    """A fast.so loaded into this process. The tag (prefix of its symbols) is read from the file's
    exported symbols unless given."""

    def __init__(self, path, tag=None):
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise Error("%s: no such file" % path, ERR_INPUT)
        if tag is None:
            try:
                tags = _elf.model_tags(self.path)
            except _elf.ElfError as e:
                raise Error(str(e), ERR_INPUT) from None
            if not tags:
                raise Error("%s: not a vtopt model (no <tag>_signature/_create/_run symbols)" % path, ERR_INPUT)
            if len(tags) > 1:
                raise Error("%s holds several models (%s): give tag=" % (path, ", ".join(tags)), ERR_INPUT)
            tag = tags[0]
        self.tag = tag
        try:
            self._lib = ctypes.CDLL(self.path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as e:
            raise Error("%s: cannot load: %s" % (path, e), ERR_INPUT) from None

        def fn(suffix, restype, argtypes, required=True):
            try:
                f = getattr(self._lib, "%s_%s" % (tag, suffix))
            except AttributeError:
                if not required:
                    return None
                raise Error("%s: no symbol %s_%s: not a vtopt model with tag %r" % (path, tag, suffix, tag),
                            ERR_INPUT) from None
            f.restype, f.argtypes = restype, argtypes
            return f

        P = ctypes.c_void_p
        self._signature = fn("signature", ctypes.c_char_p, [])
        self._create = fn("create", ctypes.c_int, [ctypes.c_int, ctypes.POINTER(P)])
        self._run = fn("run", ctypes.c_int, [P, ctypes.POINTER(_Tensor), ctypes.POINTER(_Tensor)])
        self._reset = fn("reset", ctypes.c_int, [P])
        self._set = fn("set", ctypes.c_int, [P, ctypes.c_char_p, ctypes.c_double])
        self._state_info = fn("state_info", ctypes.c_int, [P] + [ctypes.POINTER(ctypes.c_int64)] * 3, False)
        self._last_error = fn("last_error", ctypes.c_char_p, [P])
        self._destroy = fn("destroy", None, [P])
        self.signature = json.loads(self._signature().decode("utf-8"))
        self.inputs = [TensorSpec(d) for d in self.signature["inputs"]]
        self.outputs = [TensorSpec(d) for d in self.signature["outputs"]]

    def __repr__(self):
        return "vtopt.Model(%r, tag=%r, inputs=%r, outputs=%r)" % (self.path, self.tag, self.inputs, self.outputs)

    def session(self, threads=0):
        """A new session (one stream of state; threads <= 0: VTOPT_NUM_THREADS or all CPUs)."""
        return Session(self, threads)

    def run(self, *args, **kwargs):
        """One-shot: a fresh session runs the inputs once (see Session.run)."""
        with self.session() as s:
            return s.run(*args, **kwargs)

    def _message(self, handle):
        m = self._last_error(handle)
        return m.decode("utf-8", "replace") if m else "unknown error"


class Session:
    """One session of a Model: its own arena and stream state. Use each session from one thread at
    a time (another thread gets SessionBusyError); use one session per thread for parallel runs."""

    def __init__(self, model, threads=0):
        self.model = model
        self._h = ctypes.c_void_p()
        rc = model._create(int(threads), ctypes.byref(self._h))
        if rc != OK:
            self._h = None
            raise Error("%s: creating a session failed: %s" % (model.path, model._message(None)), rc)

    def close(self):
        if getattr(self, "_h", None):
            self.model._destroy(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check(self, rc):
        if rc == OK:
            return
        msg = self.model._message(self._h)
        if rc == ERR_BUSY:
            raise SessionBusyError(msg)
        if rc == ERR_INPUT:
            raise InputError(msg)
        raise Error(msg, rc)

    def _handle(self):
        if not self._h:
            raise Error("session is closed")
        return self._h

    def _arrange(self, args, kwargs):
        specs = self.model.inputs
        if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
            kwargs, args = dict(args[0]), ()
        if len(args) > len(specs):
            raise InputError("%d inputs given, the model takes %d (%s)"
                             % (len(args), len(specs), ", ".join(s.name for s in specs)))
        arrays = list(args) + [None] * (len(specs) - len(args))
        for name, a in kwargs.items():
            idx = [i for i, s in enumerate(specs) if s.name == name]
            if not idx:
                raise InputError("no input named %r (inputs: %s)" % (name, ", ".join(s.name for s in specs)))
            if arrays[idx[0]] is not None:
                raise InputError("input %r given twice" % name)
            arrays[idx[0]] = a
        missing = [s.name for s, a in zip(specs, arrays) if a is None]
        if missing:
            raise InputError("missing input(s): %s" % ", ".join(missing))
        out = []
        for s, a in zip(specs, arrays):
            if s.dtype is None:
                raise DtypeError("input %r has dtype %s, which numpy cannot hold" % (s.name, s.dtype_name))
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            if a.dtype != s.dtype:
                raise DtypeError("input %r: expected dtype %s, got %s" % (s.name, np.dtype(s.dtype).name, a.dtype.name))
            if a.shape != s.shape:
                raise InputError("input %r: expected shape %s, got %s" % (s.name, list(s.shape), list(a.shape)))
            out.append(np.ascontiguousarray(a))
        return out

    @staticmethod
    def _tensor(spec, a):
        t = _Tensor()
        t.dtype, t.rank = spec.onnx_dtype, len(spec.shape)
        for k, d in enumerate(spec.shape):
            t.dims[k] = d
        t.data = a.ctypes.data
        t.owned_by_library = False
        return t

    def run(self, *args, **kwargs):
        """Runs once. Inputs positionally (signature order), by name (keywords or one dict); each a
        numpy array of exactly the signature's dtype and shape. Returns the outputs, a list of new
        numpy arrays in signature order."""
        h = self._handle()
        arrays = self._arrange(args, kwargs)
        ins = (_Tensor * max(1, len(arrays)))(*[self._tensor(s, a) for s, a in zip(self.model.inputs, arrays)])
        results = [np.empty(s.shape, dtype=s.dtype) for s in self.model.outputs]
        outs = (_Tensor * max(1, len(results)))(*[self._tensor(s, a) for s, a in zip(self.model.outputs, results)])
        self._check(self.model._run(h, ins, outs))
        return results

    def run_dict(self, *args, **kwargs):
        """As run, the outputs as {name: array}."""
        return {s.name: a for s, a in zip(self.model.outputs, self.run(*args, **kwargs))}

    def reset(self):
        """Drops the stream state: the next run computes everything."""
        self._check(self.model._reset(self._handle()))

    def set(self, knob, value):
        """Sets a runtime knob (e.g. "eventful.r") from the next run on; unknown names raise InputError."""
        self._check(self.model._set(self._handle(), knob.encode("utf-8"), float(value)))

    def state_info(self):
        """{"bytes": state held by stateful ops, "updated": token rows the gates updated since the
        last flush, "seen": token rows they saw}."""
        if self.model._state_info is None:
            raise Error("%s: the library has no state_info (built by an older vtopt)" % self.model.path)
        b, u, n = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
        self._check(self.model._state_info(self._handle(), ctypes.byref(b), ctypes.byref(u), ctypes.byref(n)))
        return {"bytes": b.value, "updated": u.value, "seen": n.value}

    def stream(self, frames, input=None, **others):
        """Iterates over frames, running each through this session (stateful ops keep state from
        frame to frame) and yielding its outputs (a list). frames: an array whose dim 0 counts
        frames (each frame fed as frames[i:i+1] when the input's dim 0 is 1, else frames[i]) or
        any iterable of arrays. input: the input the frames feed (default the first); others:
        the remaining inputs by name, the same for every frame."""
        specs = self.model.inputs
        if not specs:
            raise InputError("the model has no inputs to stream")
        name = input if input is not None else specs[0].name
        spec = [s for s in specs if s.name == name]
        if not spec:
            raise InputError("no input named %r (inputs: %s)" % (name, ", ".join(s.name for s in specs)))
        spec = spec[0]
        if isinstance(frames, np.ndarray):
            if frames.ndim == len(spec.shape) and spec.shape and spec.shape[0] == 1 and frames.shape[1:] == spec.shape[1:]:
                seq = (frames[i:i + 1] for i in range(frames.shape[0]))
            elif frames.ndim == len(spec.shape) + 1:
                seq = (frames[i] for i in range(frames.shape[0]))
            else:
                raise InputError("stream of %r: frames of shape %s do not split into %s"
                                 % (name, list(frames.shape), list(spec.shape)))
        else:
            seq = iter(frames)
        for f in seq:
            feed = dict(others)
            feed[name] = f
            yield self.run(**feed)


def load(path, tag=None):
    """Loads a fast.so (see Model)."""
    return Model(path, tag)
