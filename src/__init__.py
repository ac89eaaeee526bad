"""PTQ4SR in MindSpore: super-resolution networks, their post-training quantization and evaluation."""
import os

# MindSpore hands oneDNN plain NCHW tensors; on AVX-512 CPUs oneDNN then picks its `jit_uni_ncsp`
# convolution, measured ~100x slower here (2.9 s vs 0.03 s for a 64-channel 128x128 conv) than the
# gemm kernel it uses when capped at AVX2. oneDNN reads the cap lazily, so setting it on import of
# this package is early enough; a value already in the environment wins.
os.environ.setdefault('ONEDNN_MAX_CPU_ISA', 'AVX2')
