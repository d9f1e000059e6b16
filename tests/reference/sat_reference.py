#!/usr/bin/python3
"""Independent PyTorch reference for the Show, Attend and Tell model in nn/.

Written from the equations in nn/model.h (not from the C loops): the encoder
is F.conv2d / F.batch_norm / F.relu / F.max_pool2d, the LSTM is PyTorch's own
cell (torch.lstm_cell, gate order i, f, g, o), gradients come from autograd,
the optimiser is torch.optim.AdamW with torch.nn.utils.clip_grad_norm_.
Everything is computed in float64 from the float32 values stored in the files.

For each variant (the three attention score functions, the bottleneck
baseline, the additive model with the auxiliary word loss, adaptive attention,
and the dot-product model with its output layer tied to the embedding) it writes two
safetensors files under tests/fixtures/:
  sat_<variant>_model.safetensors     the model, in exactly the C format
                                      (sat_model_load reads it)
  sat_<variant>_expected.safetensors  inputs, loss terms, logits, alpha, beta,
                                      every parameter gradient, 10 AdamW-step
                                      losses, then every tensor (parameters and
                                      batch-norm running stats) and the
                                      inference-mode loss after those steps
("small" is the additive variant). tests/test_reference.c compares the C model
against these files.

Regenerate (deterministic, seeded; each variant has its own seed, so one can
be regenerated alone and the others stay byte-identical):
    /usr/bin/python3 tests/reference/sat_reference.py [VARIANT...]
(Debian's python3 with torch and numpy; safetensors is read and written by the
small helper below, so the model files load here as ordinary tensors.)
"""

import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

# Optimiser settings of the 10-step run (also written into the expected file).
LR, BETAS, EPS, WEIGHT_DECAY, MAX_NORM, STEPS = 1e-2, (0.9, 0.999), 1e-8, 0.01, 1.0, 10
SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]
PAD, START, END = 0, 1, 2

# ---------------------------------------------------------------- safetensors

_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def save_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy array) in file order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, array in tensors:
        array = np.ascontiguousarray(array)
        dtype = {np.dtype(v): k for k, v in _DTYPES.items()}[array.dtype]
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    """Returns ({name: torch tensor}, metadata dict); tensors keep file order."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + length:]
    tensors = {}
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = entry["data_offsets"]
        dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata


# ---------------------------------------------------------------- the model layout

def parse_encoder(spec, image_size):
    """'4s2,6p,8p' -> [(in, out, stride, pool)], final grid size, features. A residual
    block '6r' (two convolutions, the second adding the block's input before its ReLU)
    is two entries; residual_layers(spec) says which entries add a shortcut."""
    layers, channels, size = [], 3, image_size
    for item in spec.split(","):
        match = re.fullmatch(r"(\d+)((?:s2|p|r)*)", item)
        assert match, f"bad encoder item {item!r}"
        out, suffixes = int(match.group(1)), match.group(2)
        stride = 2 if "s2" in suffixes else 1
        pool = "p" in suffixes
        if "r" in suffixes:
            layers.append((channels, out, 1, False))
        layers.append((channels if "r" not in suffixes else out, out, stride, pool))
        size = (size + 2 - 3) // stride + 1
        if pool:
            size //= 2
        channels = out
    return layers, size, channels


def residual_layers(spec):
    """The indices of the convolutions that end a residual block."""
    ends, index = set(), 0
    for item in spec.split(","):
        if "r" in item:
            index += 1
            ends.add(index)
        index += 1
    return ends


def tensor_specs(cfg):
    """[(name, shape, decayed, trainable)] in the C file order (nn/model.c walk_*).
    Decay: weight matrices, conv kernels, the embedding and the additive score
    vector; not biases, batch-norm affine parameters or running statistics."""
    layers, grid, D = parse_encoder(cfg["encoder"], cfg["image_size"])
    H, E, V, A = cfg["hidden_dim"], cfg["embed_dim"], cfg["vocab_size"], cfg["attention_dim"]
    specs = []
    for l, (cin, cout, _, _) in enumerate(layers):
        specs += [(f"encoder.conv{l}.weight", (cout, cin, 3, 3), True, True),
                  (f"encoder.bn{l}.weight", (cout,), False, True),
                  (f"encoder.bn{l}.bias", (cout,), False, True),
                  (f"encoder.bn{l}.running_mean", (cout,), False, False),
                  (f"encoder.bn{l}.running_var", (cout,), False, False)]
    if cfg["decoder"] == "transformer":
        return specs + transformer_specs(cfg, grid, D)
    specs += [("decoder.init_h.weight", (H, D), True, True), ("decoder.init_h.bias", (H,), False, True),
              ("decoder.init_c.weight", (H, D), True, True), ("decoder.init_c.bias", (H,), False, True),
              ("decoder.embedding.weight", (V, E), True, True)]
    if cfg["decoder"] in ("attention", "adaptive"):
        if cfg["score"] == "additive":
            specs += [("decoder.attention.feature.weight", (A, D), True, True),
                      ("decoder.attention.feature.bias", (A,), False, True),
                      ("decoder.attention.query.weight", (A, H), True, True),
                      ("decoder.attention.score.weight", (A,), True, True)]
        elif cfg["score"] == "dot":
            specs += [("decoder.attention.query.weight", (D, H), True, True)]
        else:
            specs += [("decoder.attention.bilinear.weight", (H, D), True, True)]
        if cfg["decoder"] == "attention":
            specs += [("decoder.gate.weight", (1, H), True, True), ("decoder.gate.bias", (1,), False, True)]
        else:  # the visual sentinel (nn/sentinel.h)
            specs += [("decoder.sentinel.input_weight", (H, E), True, True),
                      ("decoder.sentinel.hidden_weight", (H, H), True, True),
                      ("decoder.sentinel.bias", (H,), False, True),
                      ("decoder.sentinel.projection", (D, H), True, True)]
    specs += [("decoder.lstm.weight_ih", (4 * H, E + D), True, True),
              ("decoder.lstm.weight_hh", (4 * H, H), True, True),
              ("decoder.lstm.bias", (4 * H,), False, True),
              ("decoder.out_hidden.weight", (E, H), True, True), ("decoder.out_hidden.bias", (E,), False, True),
              ("decoder.out_context.weight", (E, D), True, True), ("decoder.out_context.bias", (E,), False, True),
              ("decoder.out.weight", (V, E), True, True), ("decoder.out.bias", (V,), False, True)]
    if cfg.get("tied"):  # the output layer reads the embedding's tensor; the file has it once
        specs = [spec for spec in specs if spec[0] != "decoder.out.weight"]
    if cfg.get("aux_weight", 0) > 0:
        specs += [("decoder.aux.weight", (V, D), True, True), ("decoder.aux.bias", (V,), False, True)]
    if cfg.get("encoder_layers", 0) > 0:  # the grid encoder in front of the LSTM, of width D
        specs += grid_encoder_specs("grid_encoder.", D, D, grid, cfg["ff_dim"], cfg["encoder_layers"])
    return specs


def transformer_layer_specs(prefix, C, F_, decoder):
    """One pre-norm layer's tensors: PyTorch's TransformerEncoderLayer / DecoderLayer names."""
    s = [(prefix + "norm1.weight", (C,), False, True), (prefix + "norm1.bias", (C,), False, True),
         (prefix + "self_attn.in_proj_weight", (3 * C, C), True, True),
         (prefix + "self_attn.in_proj_bias", (3 * C,), False, True),
         (prefix + "self_attn.out_proj.weight", (C, C), True, True),
         (prefix + "self_attn.out_proj.bias", (C,), False, True)]
    if decoder:
        s += [(prefix + "multihead_attn.in_proj_weight", (3 * C, C), True, True),
              (prefix + "multihead_attn.in_proj_bias", (3 * C,), False, True),
              (prefix + "multihead_attn.out_proj.weight", (C, C), True, True),
              (prefix + "multihead_attn.out_proj.bias", (C,), False, True)]
    s += [(prefix + "norm2.weight", (C,), False, True), (prefix + "norm2.bias", (C,), False, True)]
    if decoder:
        s += [(prefix + "norm3.weight", (C,), False, True), (prefix + "norm3.bias", (C,), False, True)]
    return s + [(prefix + "linear1.weight", (F_, C), True, True), (prefix + "linear1.bias", (F_,), False, True),
                (prefix + "linear2.weight", (C, F_), True, True), (prefix + "linear2.bias", (C,), False, True)]


def grid_encoder_specs(base, C, D, grid, F_, layers):
    """The grid encoder's tensors behind base: projection, row and column embeddings, layers, final norm."""
    specs = [(base + "grid.weight", (C, D), True, True), (base + "grid.bias", (C,), False, True),
             (base + "grid.rows", (grid, C), False, True), (base + "grid.columns", (grid, C), False, True)]
    for l in range(layers):
        specs += transformer_layer_specs(f"{base}encoder.layers.{l}.", C, F_, False)
    if layers:
        specs += [(base + "encoder.norm.weight", (C,), False, True), (base + "encoder.norm.bias", (C,), False, True)]
    return specs


def transformer_specs(cfg, grid, D):
    """The Transformer decoder's tensors in nn/model.c's walk order: PyTorch's
    TransformerEncoder/Decoder state-dict names behind a prefix."""
    C, V, F_, E_, D_ = cfg["embed_dim"], cfg["vocab_size"], cfg["ff_dim"], cfg["encoder_layers"], cfg["decoder_layers"]
    specs = grid_encoder_specs("transformer.", C, D, grid, F_, E_)
    specs.append(("transformer.embedding.weight", (V, C), True, True))
    for l in range(D_):
        specs += transformer_layer_specs(f"transformer.decoder.layers.{l}.", C, F_, True)
    specs += [("transformer.decoder.norm.weight", (C,), False, True), ("transformer.decoder.norm.bias", (C,), False, True)]
    if not cfg["tied"]:
        specs.append(("transformer.out.weight", (V, C), True, True))
    return specs + [("transformer.out.bias", (V,), False, True)]


# ---------------------------------------------------------------- the model

def attention_scores(P, score, h, z):
    """e [R, L] from h [R, H] and z [R, L, D]."""
    if score == "additive":   # v . tanh(W_h h + W_z z_i + b)
        hidden = torch.tanh(F.linear(z, P["decoder.attention.feature.weight"], P["decoder.attention.feature.bias"])
                            + F.linear(h, P["decoder.attention.query.weight"]).unsqueeze(1))
        return hidden @ P["decoder.attention.score.weight"]
    if score == "dot":        # (W_q h) . z_i / sqrt(D)
        q = F.linear(h, P["decoder.attention.query.weight"])
        return torch.bmm(z, q.unsqueeze(2)).squeeze(2) / math.sqrt(z.shape[2])
    # general: h^T W z_i, W [hidden, features]
    return torch.einsum("rh,hd,rld->rl", h, P["decoder.attention.bilinear.weight"], z)


def auxiliary_loss(P, cfg, z_images, captions, row_image):
    """aux_weight * mean over images and the non-special words v >= 4 of
    BCE(W_aux zbar + b_aux, t), zbar the image's mean annotation vector and
    t_v = 1 where v occurs in any of the image's caption rows. Returns (aux, logits [B, V])."""
    zbar = z_images.mean(1)                                           # [B, D]
    logits = F.linear(zbar, P["decoder.aux.weight"], P["decoder.aux.bias"])
    V = logits.shape[1]
    present = F.one_hot(captions, V).amax(1).to(logits.dtype)       # [R, V]: word in that row
    targets = torch.zeros_like(logits).index_add(0, row_image, present).clamp(max=1.0)
    words = slice(len(SPECIALS), V)
    bce = F.binary_cross_entropy_with_logits(logits[:, words], targets[:, words])
    # The textbook form, to pin down the reduction (mean over images x words).
    s = torch.sigmoid(logits[:, words])
    manual = -(targets[:, words] * torch.log(s) + (1 - targets[:, words]) * torch.log(1 - s)).mean()
    assert abs(bce.item() - manual.item()) < 1e-10, (bce.item(), manual.item())
    return cfg["aux_weight"] * bce, logits


def grid_encoder(P, cfg, z, grid):
    """The LSTM's grid encoder (nn/model.h): m = z W^T + b + row_y + column_x, then pre-norm
    layers m += SelfAttention(LN1(m)); m += W2 act(W1 LN2(m) + b1) + b2, then a final LN.
    Written with F.multi_head_attention_forward, not the C's loops."""
    B, L, D = z.shape
    base, heads = "grid_encoder.", cfg["heads"]
    act = F.gelu if cfg["activation"] == "gelu" else F.relu
    m = F.linear(z, P[base + "grid.weight"], P[base + "grid.bias"])
    m = m + (P[base + "grid.rows"][:, None, :] + P[base + "grid.columns"][None, :, :]).reshape(L, D)
    for l in range(cfg["encoder_layers"]):
        p = f"{base}encoder.layers.{l}."
        n1 = F.layer_norm(m, (D,), P[p + "norm1.weight"], P[p + "norm1.bias"], 1e-5).transpose(0, 1)  # [L, B, D]
        att, _ = F.multi_head_attention_forward(n1, n1, n1, D, heads, P[p + "self_attn.in_proj_weight"],
                                                P[p + "self_attn.in_proj_bias"], None, None, False, 0.0,
                                                P[p + "self_attn.out_proj.weight"], P[p + "self_attn.out_proj.bias"],
                                                training=False, need_weights=False)
        m = m + att.transpose(0, 1)
        n2 = F.layer_norm(m, (D,), P[p + "norm2.weight"], P[p + "norm2.bias"], 1e-5)
        m = m + F.linear(act(F.linear(n2, P[p + "linear1.weight"], P[p + "linear1.bias"])),
                         P[p + "linear2.weight"], P[p + "linear2.bias"])
    return F.layer_norm(m, (D,), P[base + "encoder.norm.weight"], P[base + "encoder.norm.bias"], 1e-5)


def forward(P, stats, cfg, images, captions, row_image, label_smoothing, training=True):
    """Returns dict of loss, cross_entropy, penalty, logits [T, R, V], alpha [T, R, L], beta [T, R]
    (and aux, aux_logits [B, V] with the auxiliary head).
    training: batch statistics (running ones updated in place, momentum 0.1);
    otherwise the running statistics. Dropout is 0 in every fixture."""
    layers, _, _ = parse_encoder(cfg["encoder"], cfg["image_size"])
    shortcuts, x, block_input = residual_layers(cfg["encoder"]), images, images
    for l, (_, _, stride, pool) in enumerate(layers):
        if l + 1 in shortcuts:
            block_input = x
        x = F.conv2d(x, P[f"encoder.conv{l}.weight"], stride=stride, padding=1)
        x = F.batch_norm(x, stats[f"encoder.bn{l}.running_mean"], stats[f"encoder.bn{l}.running_var"],
                         P[f"encoder.bn{l}.weight"], P[f"encoder.bn{l}.bias"],
                         training=training, momentum=0.1, eps=1e-5)
        if l in shortcuts:
            x = x + block_input
        x = F.relu(x)
        if pool:
            x = F.max_pool2d(x, 2)
    z_images = x.flatten(2).transpose(1, 2)           # [B, L, D], cell = y*W + x
    cnn_z = z_images                                  # what the auxiliary loss reads
    if cfg.get("encoder_layers", 0) > 0:
        z_images = grid_encoder(P, cfg, z_images, int(math.isqrt(z_images.shape[1])))
    z = z_images[row_image]                           # [R, L, D]
    z_mean = z.mean(1)
    h = torch.tanh(F.linear(z_mean, P["decoder.init_h.weight"], P["decoder.init_h.bias"]))
    c = torch.tanh(F.linear(z_mean, P["decoder.init_c.weight"], P["decoder.init_c.bias"]))
    T = captions.shape[1] - 1
    inputs, targets = captions[:, :T], captions[:, 1:]
    embedded = F.embedding(inputs, P["decoder.embedding.weight"])   # [R, T, E]
    attention = cfg["decoder"] in ("attention", "adaptive")
    logits, alphas, betas = [], [], []
    for t in range(T):
        if cfg["decoder"] == "adaptive":
            # Lu et al. 2017: a softmax over the L cells and the sentinel u, scored alike.
            e = attention_scores(P, cfg["score"], h, z)                                    # [R, L]
            g = torch.sigmoid(F.linear(embedded[:, t], P["decoder.sentinel.input_weight"])
                              + F.linear(h, P["decoder.sentinel.hidden_weight"], P["decoder.sentinel.bias"]))
            u = F.linear(g * torch.tanh(c), P["decoder.sentinel.projection"])             # [R, D]
            e_s = attention_scores(P, cfg["score"], h, u.unsqueeze(1))                     # [R, 1]
            weights = torch.softmax(torch.cat([e, e_s], dim=1), dim=1)                     # [R, L + 1]
            zhat = torch.bmm(weights[:, :-1].unsqueeze(1), z).squeeze(1) + weights[:, -1:] * u
            alphas.append(torch.softmax(e, dim=1))
            betas.append(weights[:, :-1].sum(1))
        elif attention:
            alpha = torch.softmax(attention_scores(P, cfg["score"], h, z), dim=1)
            context = torch.bmm(alpha.unsqueeze(1), z).squeeze(1)
            beta = torch.sigmoid(F.linear(h, P["decoder.gate.weight"], P["decoder.gate.bias"]))  # [R, 1]
            zhat = beta * context
            alphas.append(alpha)
            betas.append(beta.squeeze(1))
        else:
            zhat = z_mean
        x_t = torch.cat([embedded[:, t], zhat], dim=1)
        h, c = torch.lstm_cell(x_t, (h, c), P["decoder.lstm.weight_ih"], P["decoder.lstm.weight_hh"],
                               P["decoder.lstm.bias"], torch.zeros_like(P["decoder.lstm.bias"]))
        out = (embedded[:, t] + F.linear(h, P["decoder.out_hidden.weight"], P["decoder.out_hidden.bias"])
               + F.linear(zhat, P["decoder.out_context.weight"], P["decoder.out_context.bias"]))
        out = F.dropout(out, p=cfg["dropout"], training=training)
        out_weight = P["decoder.embedding.weight"] if cfg.get("tied") else P["decoder.out.weight"]
        logits.append(F.linear(out, out_weight, P["decoder.out.bias"]))
    logits = torch.stack(logits)                      # [T, R, V]
    V = logits.shape[2]
    flat_targets = targets.t().reshape(-1)            # step-major like the logits
    ce = F.cross_entropy(logits.reshape(-1, V), flat_targets, ignore_index=PAD, label_smoothing=label_smoothing)
    # The same by hand, to pin down PyTorch's ignore_index + label_smoothing semantics.
    logp = torch.log_softmax(logits.reshape(-1, V), dim=1)
    valid = flat_targets != PAD
    nll = -logp[torch.arange(len(flat_targets)), flat_targets]
    manual = (((1 - label_smoothing) * nll - label_smoothing * logp.mean(1))[valid]).mean()
    assert abs(ce.item() - manual.item()) < 1e-12 * max(1.0, abs(ce.item())), (ce.item(), manual.item())
    result = {"cross_entropy": ce, "logits": logits}
    if attention:
        alpha = torch.stack(alphas)                   # [T, R, L]
        mask = (targets.t() != PAD).to(alpha.dtype)   # steps whose target is not pad
        coverage = (alpha * mask.unsqueeze(2)).sum(0)  # [R, L]
        gap = 1 - coverage
        if cfg.get("attention_penalty") == "excess":  # only the mass beyond 1
            gap = torch.clamp(gap, max=0.0)
            assert (gap < 0).any() and (gap == 0).any(), "the fixture should have cells on both sides of 1"
        penalty = cfg["doubly_stochastic"] * (gap ** 2).sum(1).mean()
        result.update(alpha=alpha, beta=torch.stack(betas))
    else:
        penalty = torch.zeros(())
    result["penalty"] = penalty
    result["loss"] = ce + penalty
    if cfg.get("aux_weight", 0) > 0:
        result["aux"], result["aux_logits"] = auxiliary_loss(P, cfg, cnn_z, captions, row_image)
        result["loss"] = result["loss"] + result["aux"]
    return result


# ---------------------------------------------------------------- fixtures

VARIANTS = [
    # name, image_size, encoder, decoder, score, label_smoothing, captions, row_image, images
    dict(name="small", image_size=16, encoder="4,6p,8p", decoder="attention", score="additive",
         label_smoothing=0.0, images=3, lengths=[6, 3, 4, 5], row_image=[0, 1, 0, 2]),
    dict(name="dot", image_size=24, encoder="4s2,6p,8", decoder="attention", score="dot",
         label_smoothing=0.1, images=2, lengths=[4, 6, 2], row_image=[1, 0, 1]),
    dict(name="general", image_size=20, encoder="5s2,6p,7p", decoder="attention", score="general",
         label_smoothing=0.0, images=3, lengths=[5, 6, 3], row_image=[2, 0, 2]),  # image 1: no caption
    dict(name="bottleneck", image_size=16, encoder="4p,6p", decoder="bottleneck", score="additive",
         label_smoothing=0.1, images=2, lengths=[3, 6, 5], row_image=[0, 1, 1]),
    # The auxiliary word loss; images 0 and 1 have two captions each (targets are their union).
    dict(name="aux", image_size=16, encoder="4,6p,8p", decoder="attention", score="additive",
         label_smoothing=0.1, images=3, lengths=[6, 3, 4, 5, 2], row_image=[0, 1, 0, 2, 1], aux_weight=0.5),
    # Adaptive attention: the visual sentinel instead of the gate, scored by the additive MLP.
    dict(name="adaptive", image_size=24, encoder="4s2,6p,8", decoder="adaptive", score="additive",
         label_smoothing=0.1, images=2, lengths=[5, 6, 3], row_image=[1, 0, 1]),
    # The output layer tied to the word embedding: its gradient is the sum of both uses.
    dict(name="tied", image_size=24, encoder="4s2,6p,8", decoder="attention", score="dot",
         label_smoothing=0.1, images=2, lengths=[4, 6, 2], row_image=[1, 0, 1], tied=True),
    # A grid encoder (1 self-attention layer, 2 heads, GELU) in front of the LSTM, with the aux loss on the CNN's cells.
    dict(name="grid", image_size=24, encoder="4s2,6p,8", decoder="attention", score="additive",
         label_smoothing=0.1, images=2, lengths=[5, 6, 3], row_image=[1, 0, 1], aux_weight=0.5,
         grid_encoder=dict(encoder_layers=1, heads=2, ff_dim=12, activation="gelu")),
    # Residual blocks in the CNN: one after a stride, one followed by a pool.
    dict(name="residual", image_size=24, encoder="4s2,4r,6p,6rp,8", decoder="attention", score="dot",
         label_smoothing=0.1, images=2, lengths=[4, 6, 2], row_image=[1, 0, 1]),
    # The penalty on the mass beyond 1 only: a 2x2 grid, so some cells pass 1 over a caption and some not.
    dict(name="excess", image_size=16, encoder="4p,6p,8p", decoder="attention", score="additive",
         label_smoothing=0.1, images=3, lengths=[6, 3, 4, 5], row_image=[0, 1, 0, 2], attention_penalty="excess"),
]


def make_model(variant, rng):
    cfg = {"vocab_size": 12, "encoder": variant["encoder"], "embed_dim": 6, "hidden_dim": 7,
           "attention_dim": 5, "decoder": variant["decoder"], "score": variant["score"],
           "dropout": 0.0, "doubly_stochastic": 0.3, "image_size": variant["image_size"]}
    if "aux_weight" in variant:  # only then, so the older fixtures stay byte-identical
        cfg["aux_weight"] = variant["aux_weight"]
    if variant.get("tied"):
        cfg["tied"] = True
    if "attention_penalty" in variant:
        cfg["attention_penalty"] = variant["attention_penalty"]
    cfg.update(variant.get("grid_encoder", {}))
    params = []
    for name, shape, _, _ in tensor_specs(cfg):
        if name.endswith("running_mean"):
            value = rng.normal(0.0, 0.3, shape)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif ".bn" in name and name.endswith("weight"):
            value = rng.uniform(0.6, 1.4, shape)
        elif ".bn" in name:
            value = rng.uniform(-0.3, 0.3, shape)
        elif "norm" in name:  # layer norms away from the identity
            value = rng.uniform(0.6, 1.4, shape) if name.endswith("weight") else rng.uniform(-0.3, 0.3, shape)
        elif name.endswith(("grid.rows", "grid.columns")):
            value = rng.normal(0.0, 0.5, shape)
        elif name == "decoder.embedding.weight" and not cfg.get("tied"):
            value = rng.normal(0.0, 1.0, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            bound = 1.0 / math.sqrt(fan_in)
            if ".attention." in name:
                bound *= 3.0  # sharper, clearly non-uniform attention
            value = rng.uniform(-bound, bound, shape)
        params.append((name, np.asarray(value, dtype=np.float32)))
    return cfg, params


def write_model(path, cfg, params):
    config = {k: cfg[k] for k in ("vocab_size", "encoder", "embed_dim", "hidden_dim", "attention_dim",
                                  "decoder", "score", "dropout", "doubly_stochastic", "attention_penalty", "aux_weight", "tied", "encoder_layers",
                                  "heads", "ff_dim", "activation") if k in cfg}
    preprocess = {"image_size": cfg["image_size"], "resize": "stretch to image_size x image_size, bilinear",
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    vocab = SPECIALS + ["w%d" % i for i in range(4, cfg["vocab_size"])]
    metadata = {"format": "show-attend-tell-c", "format_version": "1",
                "config": json.dumps(config, separators=(",", ":")),
                "preprocess": json.dumps(preprocess, separators=(",", ":")),
                "vocab": json.dumps(vocab, separators=(",", ":"))}
    save_safetensors(path, params, metadata)


def make_captions(lengths, vocab_size, rng):
    """Rows <start> w.. <end> <pad>..; length counts the words and <end>."""
    T = max(lengths)
    captions = np.zeros((len(lengths), T + 1), dtype=np.int32)
    for r, n in enumerate(lengths):
        captions[r, 0] = START
        captions[r, 1:n] = rng.integers(3, vocab_size, n - 1)  # words, <unk> included
        captions[r, n] = END
    return captions


def run_variant(variant, seed):
    rng = np.random.default_rng(seed)
    model_path = os.path.join(FIXTURES, f"sat_{variant['name']}_model.safetensors")
    expected_path = os.path.join(FIXTURES, f"sat_{variant['name']}_expected.safetensors")
    cfg, params = make_model(variant, rng)
    write_model(model_path, cfg, params)

    # Read the model back as ordinary tensors: the C file format in Python.
    loaded, metadata = load_safetensors(model_path)
    file_cfg = json.loads(metadata["config"])
    file_cfg["image_size"] = json.loads(metadata["preprocess"])["image_size"]
    assert file_cfg == cfg and list(loaded) == [n for n, _ in params]
    specs = tensor_specs(file_cfg)
    P = {n: loaded[n].double().requires_grad_(True) for n, _, _, trainable in specs if trainable}
    stats = {n: loaded[n].double().clone() for n, _, _, trainable in specs if not trainable}

    S = cfg["image_size"]
    images = rng.normal(0.0, 1.0, (variant["images"], 3, S, S)).astype(np.float32)
    captions = make_captions(variant["lengths"], cfg["vocab_size"], rng)
    row_image = np.asarray(variant["row_image"], dtype=np.int32)
    ls = variant["label_smoothing"]
    x_images = torch.from_numpy(images).double()
    x_captions = torch.from_numpy(captions).long()
    x_rows = torch.from_numpy(row_image).long()

    decayed = [n for n, _, decay, trainable in specs if trainable and decay]
    others = [n for n, _, decay, trainable in specs if trainable and not decay]
    optimizer = torch.optim.AdamW([{"params": [P[n] for n in decayed], "weight_decay": WEIGHT_DECAY},
                                   {"params": [P[n] for n in others], "weight_decay": 0.0}],
                                  lr=LR, betas=BETAS, eps=EPS)
    losses, first = [], None
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=False)
        result = forward(P, stats, cfg, x_images, x_captions, x_rows, ls, training=True)
        result["loss"].backward()
        losses.append(result["loss"].item())
        if first is None:
            first = {k: v.detach().clone() for k, v in result.items()}
            grads = {n: P[n].grad.detach().clone() for n in P}
        torch.nn.utils.clip_grad_norm_(list(P.values()), MAX_NORM)
        optimizer.step()
    with torch.no_grad():
        evaluated = forward(P, stats, cfg, x_images, x_captions, x_rows, ls, training=False)

    f32 = lambda t: np.asarray(t.detach().numpy() if torch.is_tensor(t) else t, dtype=np.float32)
    scalar = lambda v: np.asarray([v], dtype=np.float32)
    out = [("images", images), ("captions", captions), ("row_image", row_image),
           ("label_smoothing", scalar(ls)),
           ("lr", scalar(LR)), ("weight_decay", scalar(WEIGHT_DECAY)), ("max_norm", scalar(MAX_NORM)),
           ("loss", scalar(first["loss"].item())), ("cross_entropy", scalar(first["cross_entropy"].item())),
           ("penalty", scalar(first["penalty"].item())), ("logits", f32(first["logits"]))]
    if "alpha" in first:
        out += [("alpha", f32(first["alpha"])), ("beta", f32(first["beta"]))]
    if "aux" in first:
        out += [("aux", scalar(first["aux"].item())), ("aux_logits", f32(first["aux_logits"]))]
    out += [("grad." + n, f32(grads[n])) for n in P]
    out += [("losses", np.asarray(losses, dtype=np.float32))]
    final = {**{n: P[n] for n in P}, **stats}
    out += [("final." + n, f32(final[n])) for n, _, _, _ in specs]  # after the steps, file order
    out += [("eval_loss", scalar(evaluated["loss"].item()))]
    save_safetensors(expected_path, out, {"decayed": json.dumps(decayed), "variant": variant["name"],
                                          "generator": "tests/reference/sat_reference.py"})
    print(f"{variant['name']:>10}: loss {losses[0]:.6f} (ce {first['cross_entropy'].item():.6f}, "
          f"penalty {first['penalty'].item():.6f}"
          + (f", aux {first['aux'].item():.6f}" if "aux" in first else "")
          + f") -> {losses[-1]:.6f} after {STEPS - 1} steps; "
          f"eval {evaluated['loss'].item():.6f}; {os.path.getsize(model_path) + os.path.getsize(expected_path)} bytes")


def main(names):
    known = [v["name"] for v in VARIANTS]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    os.makedirs(FIXTURES, exist_ok=True)
    for i, variant in enumerate(VARIANTS):
        if not names or variant["name"] in names:
            run_variant(variant, seed=1000 + i)  # the seed follows the position, not what else runs
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
