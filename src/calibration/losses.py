"""PaC losses: pixel L1 to the full-precision output and the attention-map feature loss."""
from mindspore import ops


def pixel_l1_loss(y_q, y_fp):
    """``mean |y_fp − y_q|`` over all pixels (outputs in [0, 1] image scale)."""
    return ops.abs(y_fp - y_q).mean()


def attention_map(feat, eps=1e-12):
    """Per-sample L2-normalised ``flatten(mean over channels of F²)`` (as F.normalize)."""
    a = (feat * feat).mean(axis=1).reshape(feat.shape[0], -1)
    # sqrt(max(Σa², eps²)) = max(‖a‖, eps), but clamped before the sqrt: sqrt's infinite slope at 0
    # made the gradient of an all-zero map NaN (0·inf) with fea_grad; torch's norm backward gives 0 there.
    norm = ops.sqrt(ops.maximum((a * a).sum(axis=1, keepdims=True), eps * eps))
    return a / norm


def attention_feature_loss(feats_q, feats_fp):
    """Mean over residual blocks of ``mean((A(F_q) − A(F_fp))²)``."""
    total = 0.0
    for fq, ffp in zip(feats_q, feats_fp):
        total = total + ((attention_map(fq) - attention_map(ffp)) ** 2).mean()
    return total / len(feats_q)
