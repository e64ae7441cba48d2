"""PaliGemma's mask VAE (`vae-oid.npz`) loader, checked against numpy re-implementations of big_vision's own
encoder (TF conv2d, "SAME" padding) and decoder (flax ConvTranspose, padding 2, transpose_kernel=True) on a
randomly initialised file of the same structure that the test writes."""
from __future__ import annotations

import numpy as np
import pytest

from cxrvlm.tokens.seg import MaskTokenError, MaskTokenizer

RES, DIM, K = 128, 512, 128  # vae-oid.npz: 128 codes x 512, residual width 128
ENC = (16, 32, 64, 128)
DEC = (128, 64, 32, 16)


def _conv(rng, out_c, in_c, k, scale=1.0):
    w = rng.normal(0, scale / np.sqrt(in_c * k * k), (out_c, in_c, k, k)).astype(np.float32)
    return w, rng.normal(0, 0.05, out_c).astype(np.float32)


def write_vae_npz(path, seed=0, encoder=True, enc_kernel=4):
    """A random file with vae-oid.npz's array names and PyTorch layouts."""
    rng = np.random.default_rng(seed)
    a = {"_vq_vae._embedding": rng.normal(0, 1, (K, DIM)).astype(np.float32)}

    def put(name, w, b):
        a[name + ".weight"], a[name + ".bias"] = w, b

    def resblock(prefix):
        put(prefix + ".0", *_conv(rng, RES, RES, 3))
        put(prefix + ".2", *_conv(rng, RES, RES, 3))
        put(prefix + ".4", *_conv(rng, RES, RES, 1, 0.3))

    put("decoder.0", *_conv(rng, RES, DIM, 1))
    resblock("decoder.2.net")
    resblock("decoder.3.net")
    c_in = RES
    for i, c in zip((4, 6, 8, 10), DEC):
        # ConvTranspose2d weight layout: (in, out, kh, kw)
        w = rng.normal(0, 1 / np.sqrt(c_in * 4), (c_in, c, 4, 4)).astype(np.float32)
        put(f"decoder.{i}", w, rng.normal(0, 0.05, c).astype(np.float32))
        c_in = c
    put("decoder.12", *_conv(rng, 1, c_in, 1))
    if encoder:
        c_in = 1
        for i, c in zip((0, 2, 4, 6), ENC):
            put(f"encoder.{i}", *_conv(rng, c, c_in, enc_kernel, 2.0))
            c_in = c
        resblock("encoder.8.net")
        resblock("encoder.9.net")
        put("encoder.10", *_conv(rng, DIM, RES, 1, 3.0))
    np.savez(path, **a)
    return a


# --- numpy references (NHWC), written from big_vision's code, independent of torch ---------------------------
def _correlate(x, w_hwio, stride=1):
    """Valid cross-correlation: x (N,H,W,C), w (kh,kw,C,O)."""
    kh, kw = w_hwio.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,ijco->nhwo", win, w_hwio, optimize=True)


def tf_conv_same(x, w_pt, b, stride=1):
    """tf.nn.conv2d(x, transpose(w, (2,3,1,0)), strides, padding='SAME') + b."""
    k = w_pt.shape[2]
    n = x.shape[1]
    total = max((-(-n // stride) - 1) * stride + k - n, 0)
    x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    return _correlate(x, np.transpose(w_pt, (2, 3, 1, 0)), stride) + b


def flax_conv_transpose(x, w_pt, b):
    """flax ConvTranspose(k=4, strides=2, padding=2, transpose_kernel=True) with kernel transpose(w, (2,3,1,0)):
    lax.conv_transpose = input dilated by the stride, padded by 2, correlated with the spatially flipped kernel
    whose in/out axes are swapped."""
    n, h, w, c = x.shape
    dil = np.zeros((n, 2 * h - 1, 2 * w - 1, c), x.dtype)
    dil[:, ::2, ::2] = x
    dil = np.pad(dil, ((0, 0), (2, 2), (2, 2), (0, 0)))
    kernel = np.transpose(w_pt, (2, 3, 1, 0))  # (kh, kw, out, in), as big_vision's _get_params makes it
    kernel = np.swapaxes(kernel[::-1, ::-1], 2, 3)  # transpose_kernel: flip space, swap in/out -> (kh, kw, in, out)
    return _correlate(dil, kernel) + b


def _resblock(a, prefix, x):
    y = np.maximum(tf_conv_same(x, a[prefix + ".0.weight"], a[prefix + ".0.bias"]), 0)
    y = np.maximum(tf_conv_same(y, a[prefix + ".2.weight"], a[prefix + ".2.bias"]), 0)
    return x + tf_conv_same(y, a[prefix + ".4.weight"], a[prefix + ".4.bias"])


def big_vision_decode(a, codes):
    x = a["_vq_vae._embedding"][codes.reshape(-1)].reshape(len(codes), 4, 4, -1)
    x = np.maximum(tf_conv_same(x, a["decoder.0.weight"], a["decoder.0.bias"]), 0)
    x = _resblock(a, "decoder.3.net", _resblock(a, "decoder.2.net", x))
    for i in (4, 6, 8, 10):
        x = np.maximum(flax_conv_transpose(x, a[f"decoder.{i}.weight"], a[f"decoder.{i}.bias"]), 0)
    return tf_conv_same(x, a["decoder.12.weight"], a["decoder.12.bias"])[..., 0]


def big_vision_encode(a, masks):
    x = 2.0 * (masks[..., None] - 0.5)
    for i in (0, 2, 4, 6):
        x = np.maximum(tf_conv_same(x, a[f"encoder.{i}.weight"], a[f"encoder.{i}.bias"], stride=2), 0)
    x = _resblock(a, "encoder.9.net", _resblock(a, "encoder.8.net", x))
    x = tf_conv_same(x, a["encoder.10.weight"], a["encoder.10.bias"])
    emb = a["_vq_vae._embedding"]
    flat = x.reshape(-1, emb.shape[1])
    dist = (flat ** 2).sum(1, keepdims=True) + (emb ** 2).sum(1) - 2 * flat @ emb.T
    return dist.argmin(1).reshape(-1, 16)


# --- tests ----------------------------------------------------------------------------------------------------
def test_decoder_matches_big_vision(tmp_path):
    arrays = write_vae_npz(tmp_path / "vae-oid.npz")
    tok = MaskTokenizer.from_paligemma_npz(tmp_path / "vae-oid.npz")
    assert tok.model.cfg.embedding_dim == DIM and tok.model.cfg.dec_channels == DEC and tok.can_encode
    codes = np.random.default_rng(1).integers(0, K, (3, 16))
    ours = tok.decode_scores(codes.tolist())
    ref = big_vision_decode(arrays, codes)
    assert ours.shape == ref.shape == (3, 64, 64)
    assert np.abs(ours - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("kernel", [4, 3])
def test_encoder_matches_big_vision(tmp_path, kernel):
    """Kernel 3 with stride 2 needs TF's asymmetric SAME padding (0 before, 1 after); kernel 4 is symmetric."""
    arrays = write_vae_npz(tmp_path / "v.npz", seed=2, enc_kernel=kernel)
    tok = MaskTokenizer.from_paligemma_npz(tmp_path / "v.npz")
    yy, xx = np.mgrid[:64, :64]
    masks = np.stack([((yy - 30) ** 2 / 400 + (xx - 28) ** 2 / 150 < 1), (xx > yy), (yy > 10) & (xx < 50)])
    masks = masks.astype(np.float32)
    ours = np.array(tok.encode_arrays(masks))
    ref = big_vision_encode(arrays, masks)
    assert (ours == ref).mean() >= 15 / 16  # float ties aside, the same nearest codes
    assert len(set(ref.ravel())) > 3  # the check is not vacuous: the codes differ between positions


def test_box_decoding_with_paligemma_tokens(tmp_path):
    write_vae_npz(tmp_path / "v.npz")
    tok = MaskTokenizer.from_paligemma_npz(tmp_path / "v.npz")
    codes = [5] * 16
    scores = tok.decode_scores([codes])[0]
    mask = tok.decode(codes, (10, 20, 74, 84), (100, 120))
    assert mask.shape == (100, 120) and not mask[:20].any() and not mask[:, :10].any()
    assert np.array_equal(mask[20:84, 10:74], scores > 0)  # a 64-pixel box: no resampling, threshold at 0


def test_decoder_only_file_decodes_but_cannot_encode(tmp_path):
    write_vae_npz(tmp_path / "dec.npz", encoder=False)
    tok = MaskTokenizer.from_paligemma_npz(tmp_path / "dec.npz")
    assert not tok.can_encode
    assert tok.decode([1] * 16, (0, 0, 50, 50), (64, 64)).shape == (64, 64)
    with pytest.raises(MaskTokenError, match="no encoder"):
        tok.encode(np.ones((64, 64), bool), (0, 0, 64, 64))


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        MaskTokenizer.from_paligemma_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: cannot read"):
        MaskTokenizer.from_paligemma_npz(tmp_path / "junk.npz")
    arrays = write_vae_npz(tmp_path / "v.npz")
    arrays.pop("decoder.8.weight")
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(ValueError, match="decoder.8.weight"):
        MaskTokenizer.from_paligemma_npz(tmp_path / "partial.npz")
    arrays = write_vae_npz(tmp_path / "v.npz")
    arrays["decoder.2.net.0.bias"] = arrays["decoder.2.net.0.bias"][:5]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match="decoder.2.net.0.bias has shape"):
        MaskTokenizer.from_paligemma_npz(tmp_path / "shape.npz")
