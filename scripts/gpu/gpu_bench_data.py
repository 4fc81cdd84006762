"""gpu_bench_data.py — the GPU timing cases (GEMM and attention at ViT-B and HTTM-sized shapes):
their shapes and deterministic weights / inputs, shared by scripts/gpu_prepare.sh (which builds
the ONNX models and CUDA fast.so files here) and scripts/gpu/gpu_check.py (which regenerates the
same arrays on the GPU machine for PyTorch, so no large array is carried). numpy only."""
import numpy as np

# name: (kind, shape) -- gemm: (M, K, N) for x [1, M, K] @ W [K, N]; attn: (B, H, N, D)
CASES = {
    "bench_gemm_vitb_qkv": ("gemm", (197, 768, 2304)),
    "bench_gemm_vitb_fc1": ("gemm", (197, 768, 3072)),
    "bench_gemm_httm_proj": ("gemm", (4096, 768, 768)),
    "bench_attn_vitb": ("attn", (1, 12, 197, 64)),
    "bench_attn_httm": ("attn", (1, 12, 4096, 64)),
}


def arrays(name):
    """(weights dict, inputs dict in graph order) of case name, float32, from a per-case seed."""
    kind, shp = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    if kind == "gemm":
        m, k, n = shp
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        x = rng.standard_normal((1, m, k)).astype(np.float32)
        return {"w": w}, {"x": x}
    b, h, n, d = shp
    q, k, v = (rng.standard_normal((b, h, n, d)).astype(np.float32) for _ in range(3))
    return {}, {"q": q, "k": k, "v": v}
