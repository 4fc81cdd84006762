"""compiler.py — vtopt.compile(): runs the vtopt command-line compiler on an ONNX model and, for a
fast.so, loads the result. The CLI is found through cli=, $VTOPT_CLI, the path the install step
recorded (_install_paths.py), `vtopt` on $PATH, or the build tree next to this source tree."""
import os
import shutil
import subprocess

from .model import Error, Model, ERR_INPUT


class CompileError(Error):
    """vtopt exited with an error; .stderr holds its message, .code its exit code."""

    def __init__(self, message, code, stderr):
        super().__init__(message, code)
        self.stderr = stderr


def find_cli(cli=None):
    """Path of the vtopt executable (see the module's docstring for the search order)."""
    if cli:
        return cli
    if os.environ.get("VTOPT_CLI"):
        return os.environ["VTOPT_CLI"]
    try:
        from ._install_paths import VTOPT_CLI
        if os.path.isfile(VTOPT_CLI):
            return VTOPT_CLI
    except ImportError:
        pass
    found = shutil.which("vtopt")
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "build", "vtopt")
    if os.path.isfile(built):
        return os.path.normpath(built)
    raise Error("vtopt command not found: set VTOPT_CLI, put vtopt on PATH or pass cli=", ERR_INPUT)


def _pass_list(passes):
    if passes is None:
        return None
    if isinstance(passes, str):
        return passes
    return ",".join(passes)


def compile(model, passes=None, out=None, dims=None, tag=None, inputs=None, opt_level=None,
            extra_args=(), cli=None, timeout=None):
    """Compiles (or rewrites) the ONNX model at path `model` with the vtopt CLI.

    passes: a pipeline ("tome:r=8,httm" or a list of steps), as --pass=; out: FILE.so (a compiled
    model, returned loaded as a Model) or FILE.onnx (the rewritten graph; its path is returned);
    dims: {symbol: size} (--dim, needed for a fast.so when the model has symbolic dims); tag: the
    library's symbol prefix; inputs: {name: .npy path} (--input); extra_args: more CLI arguments.
    Errors raise CompileError with vtopt's message."""
    if out is None:
        raise Error("compile: out= is required (FILE.so or FILE.onnx)", ERR_INPUT)
    if not os.path.isfile(model):
        raise Error("%s: no such model file" % model, ERR_INPUT)
    cmd = [find_cli(cli), model, "-q", "-o", out]
    p = _pass_list(passes)
    if p:
        cmd.append("--pass=" + p)
    for k, v in (dims or {}).items():
        cmd += ["--dim", "%s=%d" % (k, int(v))]
    for k, v in (inputs or {}).items():
        cmd += ["--input", "%s=%s" % (k, v)]
    if tag:
        cmd += ["--tag", tag]
    if opt_level is not None:
        cmd.append("-O%d" % int(opt_level))
    cmd += list(extra_args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    err = r.stderr.decode("utf-8", "replace").strip()
    if r.returncode != 0:
        raise CompileError("vtopt failed (exit %d): %s" % (r.returncode, err or "no message"), r.returncode, err)
    if out.endswith(".so"):
        return Model(out, tag)
    return out
