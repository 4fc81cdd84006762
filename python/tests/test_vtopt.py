"""test_vtopt.py — the Python package against the trained glyphvit model (committed under
testsuite/models/trained): compile through the CLI, load (tag read from the file), run with numpy
(vs the torch reference and vs the interpreter's output of the same rewrite), input checks,
knobs/state/reset, streams, sessions on many threads (bit-equal to serial), a session shared by two
threads (SessionBusyError, results never corrupted), and the errors of bad files and pipelines.
usage: VTOPT_CLI=build/vtopt python3 test_vtopt.py WORK_DIR   (run by ctest: python_vtopt)"""
import os
import subprocess
import sys
import threading
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))   # the source tree, unless installed
import vtopt  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TRAINED = os.path.join(ROOT, "testsuite", "models", "trained")
MODEL = os.path.join(TRAINED, "glyphvit.onnx")
WORK = None


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def pixels(n):
    return np.load(os.path.join(TRAINED, "glyphvit.in.pixel_values.npy"))[:n].copy()


class Compiled(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dense = vtopt.compile(MODEL, out=os.path.join(WORK, "dense.so"), dims={"batch": 4})
        cls.tome = vtopt.compile(MODEL, passes="tome:r=4", out=os.path.join(WORK, "glyph_tome.so"),
                                 dims={"batch": 4}, tag="glyph_tome")
        cls.one = vtopt.compile(MODEL, passes=["tome:r=4"], out=os.path.join(WORK, "one.so"), dims={"batch": 1})

    def test_tag_and_signature_from_file(self):
        m = vtopt.load(os.path.join(WORK, "glyph_tome.so"))
        self.assertEqual(m.tag, "glyph_tome")
        self.assertEqual(m.signature["tag"], "glyph_tome")
        self.assertEqual([(s.name, s.dtype_name, s.shape) for s in m.inputs], [("pixel_values", "f32", (4, 3, 48, 48))])
        self.assertEqual([(s.name, s.shape) for s in m.outputs], [("logits", (4, 10))])
        self.assertEqual(self.dense.tag, "dense")

    def test_dense_matches_torch(self):
        ref = np.load(os.path.join(TRAINED, "glyphvit.ref.logits.npy"))[:4]
        with self.dense.session(threads=1) as s:
            (y,) = s.run(pixels(4))
        self.assertEqual(y.dtype, np.float32)
        self.assertLessEqual(rel_l2(y, ref), 1e-4)

    def test_tome_matches_interpreter(self):
        x = pixels(4)
        np.save(os.path.join(WORK, "x4.npy"), x)
        outdir = os.path.join(WORK, "interp_tome")
        subprocess.run([vtopt.find_cli(), MODEL, "--run", "-q", "--pass=tome:r=4", "--input",
                        "pixel_values=" + os.path.join(WORK, "x4.npy"), "--output-dir", outdir], check=True)
        ref = np.load(os.path.join(outdir, "logits.npy"))
        out = self.tome.session(threads=1).run_dict(pixel_values=x)
        self.assertLessEqual(rel_l2(out["logits"], ref), 1e-4)
        # the rewrite changed something: dense and ToMe differ
        (yd,) = self.dense.run(x)
        self.assertGreater(rel_l2(out["logits"], yd), 1e-6)

    def test_input_checks(self):
        s = self.dense.session(threads=1)
        x = pixels(4)
        with self.assertRaisesRegex(vtopt.DtypeError, "pixel_values.*float32.*float64"):
            s.run(x.astype(np.float64))
        with self.assertRaises(TypeError):   # a DtypeError is a TypeError too
            s.run(x.astype(np.int64))
        with self.assertRaisesRegex(vtopt.InputError, r"expected shape \[4, 3, 48, 48\], got \[3, 3, 48, 48\]"):
            s.run(x[:3])
        with self.assertRaisesRegex(vtopt.InputError, "2 inputs given, the model takes 1"):
            s.run(x, x)
        with self.assertRaisesRegex(vtopt.InputError, "missing input.*pixel_values"):
            s.run()
        with self.assertRaisesRegex(vtopt.InputError, "no input named 'pixels'"):
            s.run(pixels=x)
        with self.assertRaisesRegex(ValueError, "given twice"):
            s.run(x, pixel_values=x)
        # a non-contiguous view is accepted (copied) and gives the same result
        xt = np.asfortranarray(x)
        self.assertTrue(np.array_equal(s.run(xt)[0], s.run(x)[0]))
        s.close()
        with self.assertRaisesRegex(vtopt.Error, "closed"):
            s.run(x)

    def test_knobs_state_reset(self):
        s = self.tome.session(threads=1)
        with self.assertRaisesRegex(vtopt.InputError, "unknown knob 'nope'"):
            s.set("nope", 1)
        info = s.state_info()
        self.assertEqual(sorted(info), ["bytes", "seen", "updated"])
        self.assertEqual(info["bytes"], 0)   # ToMe keeps no state between runs
        s.reset()
        (a,) = s.run(pixels(4))
        s.reset()
        (b,) = s.run(pixels(4))
        self.assertTrue(np.array_equal(a, b))

    def test_stream_frames(self):
        clip = pixels(3)
        s = self.one.session(threads=1)
        got = [y for (y,) in s.stream(clip)]
        self.assertEqual(len(got), 3)
        for i in range(3):
            (want,) = self.one.session(threads=1).run(clip[i:i + 1])
            self.assertTrue(np.array_equal(got[i], want))
        # an iterable of frames, and frames without the batch dim
        self.assertEqual(len(list(s.stream(iter([clip[:1], clip[1:2]])))), 2)
        with self.assertRaisesRegex(vtopt.InputError, "do not split"):
            next(s.stream(np.zeros((3, 3, 40, 48), np.float32)))

    def test_eventful_stream_state_knobs(self):
        m = vtopt.compile(MODEL, passes="eventful:r=16", out=os.path.join(WORK, "evt.so"), dims={"batch": 1})
        clip = pixels(4)
        s = m.session(threads=1)
        outs = [y for (y,) in s.stream(clip)]
        info = s.state_info()
        self.assertGreater(info["bytes"], 0)
        self.assertTrue(0 < info["updated"] < info["seen"], info)   # the gates skipped tokens
        with self.assertRaisesRegex(vtopt.InputError, "knobs are eventful.r"):
            s.set("nope", 1)
        s.reset()   # the next run is a flush: equal to a fresh session's first frame
        (y0,) = s.run(clip[:1])
        (fresh,) = m.session(threads=1).run(clip[:1])
        self.assertTrue(np.array_equal(y0, fresh) and np.array_equal(y0, outs[0]))
        def updated_by_next_frame(i):
            before = s.state_info()["updated"]
            s.run(clip[i:i + 1])
            return s.state_info()["updated"] - before
        d16 = updated_by_next_frame(1)
        s.set("eventful.r", 4)   # the knob: fewer tokens per frame from the next run on
        d4 = updated_by_next_frame(2)
        self.assertTrue(0 < d4 < d16, (d4, d16))

    def test_threads_own_sessions_bit_equal(self):
        xs = [pixels(4) * (1 + 0.25 * i) for i in range(6)]
        serial = [self.tome.session(threads=1).run(x)[0] for x in xs]
        got = [None] * len(xs)
        errors = []

        def work(i):
            try:
                with self.tome.session(threads=1) as s:
                    for _ in range(3):
                        got[i] = s.run(xs[i])[0]
            except Exception as e:   # reported below
                errors.append(e)
        ts = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        for i in range(len(xs)):
            self.assertTrue(np.array_equal(got[i], serial[i]), "thread %d differs from the serial run" % i)

    def test_shared_session_busy_never_corrupts(self):
        x = pixels(4)
        s = self.tome.session(threads=1)
        (want,) = s.run(x)
        busy, bad = [0], []

        def work():
            for _ in range(40):
                try:
                    (y,) = s.run(x)
                    if not np.array_equal(y, want):
                        bad.append(y)
                except vtopt.SessionBusyError as e:
                    self.assertIn("session busy", str(e))
                    busy[0] += 1
        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(bad), 0, "a shared session returned a wrong result")
        print("shared session: %d of 80 runs answered 'session busy'" % busy[0])
        self.assertGreater(busy[0], 0, "two threads on one session never overlapped")

    def test_compile_errors(self):
        with self.assertRaises(vtopt.CompileError) as cm:
            vtopt.compile(MODEL, passes="no_such_pass", out=os.path.join(WORK, "bad.so"), dims={"batch": 1})
        self.assertEqual(cm.exception.code, 2)
        self.assertIn("no_such_pass", str(cm.exception))
        with self.assertRaisesRegex(vtopt.Error, "no such model"):
            vtopt.compile(os.path.join(WORK, "absent.onnx"), out=os.path.join(WORK, "x.so"))

    def test_compile_onnx_out(self):
        p = vtopt.compile(MODEL, passes="tome:r=4", out=os.path.join(WORK, "tome.onnx"))
        self.assertTrue(os.path.getsize(p) > 1000)


class BadFiles(unittest.TestCase):
    def test_not_a_model(self):
        txt = os.path.join(WORK, "text.so")
        with open(txt, "w") as f:
            f.write("not a library\n")
        with self.assertRaisesRegex(vtopt.Error, "not an ELF file"):
            vtopt.load(txt)
        with self.assertRaisesRegex(vtopt.Error, "no such file"):
            vtopt.load(os.path.join(WORK, "absent.so"))
        libm = [p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6") if os.path.exists(p)]
        if libm:
            with self.assertRaisesRegex(vtopt.Error, "not a vtopt model"):
                vtopt.load(libm[0])


if __name__ == "__main__":
    WORK = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(os.getcwd(), "python_test_work")
    os.makedirs(WORK, exist_ok=True)
    unittest.main(verbosity=2)
