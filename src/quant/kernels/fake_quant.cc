// Fused fake quantization for MindSpore's CPU backend (ops.Custom, func_type "aot").
// Single-threaded on purpose: it is memory-bound, and OpenMP's spinning workers slowed MindSpore's own
// kernel threads on the same cores more than a second thread gained.
//
// One pass over the tensor instead of the ~10 elementwise kernels (and ~30 in the backward) that the
// composite form in fake_quant.py costs; the arithmetic is the composite form's, operation by operation
// in float32, so the forward is bit-identical to it (built with -ffp-contract=off: no fused multiply-add).
//
// Inputs: x, lower, upper (shape () for a per-tensor quantizer, (C, 1, 1, 1) per output channel of a
// weight x of shape (C, ...)), levels (shape (), 2^bits - 1). Backward also takes dout.
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr float kMinSpan = 1e-8f;  // fake_quant.MIN_SPAN

int64_t numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

struct Grid {
  float lower, span, levels;
  bool degenerate;  // upper - lower below kMinSpan: the span is the constant floor, not upper - lower
  Grid(float l, float u, float r) : lower(l), span(std::max(u - l, kMinSpan)), levels(r), degenerate(!(u - l > kMinSpan)) {}
};

}  // namespace

extern "C" int FakeQuantForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *stream, void *extra) {
  if (nparam != 5) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *lower = static_cast<const float *>(params[1]);
  const float *upper = static_cast<const float *>(params[2]);
  const float levels = *static_cast<const float *>(params[3]);
  float *y = static_cast<float *>(params[4]);
  const int64_t n = numel(ndims[0], shapes[0]);
  const int64_t channels = numel(ndims[1], shapes[1]);
  const int64_t per_channel = n / channels;
  for (int64_t c = 0; c < channels; ++c) {
    const Grid g(lower[c], upper[c], levels);
    const float *xc = x + c * per_channel;
    float *yc = y + c * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) {
      const float z = std::min(std::max((xc[i] - g.lower) / g.span, 0.0f), 1.0f) * g.levels;
      yc[i] = std::nearbyint(z) * g.span / g.levels + g.lower;  // half to even (default rounding mode)
    }
  }
  return 0;
}

// Gradients as the composite form's automatic differentiation defines them (clamp passes its gradient
// on the closed interval [0, 1], round is a straight-through estimator): inside [l, u]
// dx = dout, du = dout (q/R - z), dl = dout (z - q/R); above u du = dout; below l dl = dout.
extern "C" int FakeQuantBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *stream, void *extra) {
  if (nparam != 8) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *lower = static_cast<const float *>(params[1]);
  const float *upper = static_cast<const float *>(params[2]);
  const float levels = *static_cast<const float *>(params[3]);
  const float *dout = static_cast<const float *>(params[4]);
  float *dx = static_cast<float *>(params[5]);
  float *dlower = static_cast<float *>(params[6]);
  float *dupper = static_cast<float *>(params[7]);
  const int64_t n = numel(ndims[0], shapes[0]);
  const int64_t channels = numel(ndims[1], shapes[1]);
  const int64_t per_channel = n / channels;
  for (int64_t c = 0; c < channels; ++c) {
    const Grid g(lower[c], upper[c], levels);
    double sl = 0.0, su = 0.0;  // double: a float32 sum of millions of terms would drift
    for (int64_t i = c * per_channel; i < (c + 1) * per_channel; ++i) {
      const float t = (x[i] - g.lower) / g.span;
      const bool inside = t >= 0.0f && t <= 1.0f;
      dx[i] = inside ? dout[i] : 0.0f;
      if (g.degenerate) {  // the span does not depend on the bounds: out = q·span/R + l
        sl += inside ? 0.0 : dout[i];
      } else if (inside) {
        const float zc = std::min(std::max(t, 0.0f), 1.0f);
        const float residual = std::nearbyint(zc * g.levels) / g.levels - zc;  // q/R - z
        su += static_cast<double>(dout[i]) * residual;
        sl -= static_cast<double>(dout[i]) * residual;
      } else if (t > 1.0f) {
        su += dout[i];
      } else {
        sl += dout[i];
      }
    }
    dlower[c] = static_cast<float>(sl);
    dupper[c] = static_cast<float>(su);
  }
  return 0;
}
