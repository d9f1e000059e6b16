#!/usr/bin/python3
"""PyTorch reference of nn/transformer.c, built from PyTorch's own modules:
nn.TransformerEncoder / nn.TransformerDecoder (pre-norm: norm_first=True,
batch_first=True, dropout 0) with the weights under the names the C file
uses (the modules' state-dict names behind a "transformer.encoder." or
"transformer.decoder." prefix), the grid projection and learned row/column
positions, word embeddings plus sinusoids, and the output layer (tied or
not). Evaluated in float64 from float32 weights.

Writes tests/fixtures/transformer_<name>.safetensors: the weights, the
inputs (z_images [B, L, D] standing for the CNN's grid, captions, row_image,
label_smoothing) and the expected loss (with the attention penalty where
the variant has one), logits [R, T, V], the attention
maps of every decoder layer (self [R, heads, T, T], cross [R, heads, T, L])
and the gradients of every weight and of z_images (prefix "grad.").

    /usr/bin/python3 tests/reference/transformer_reference.py
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sat_reference import FIXTURES, PAD, START, END, save_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)

VARIANTS = [
    # grid H x W of D features; C, heads, FF, layers; activation; tied output
    dict(name="gelu_tied", grid=(3, 2), features=5, dim=8, heads=2, ff=12, encoder_layers=1, decoder_layers=2,
         activation="gelu", tied=True, vocab=11, images=2, lengths=[4, 6, 2], row_image=[1, 0, 1],
         label_smoothing=0.1),
    dict(name="relu_no_encoder", grid=(2, 2), features=6, dim=6, heads=3, ff=10, encoder_layers=0, decoder_layers=1,
         activation="relu", tied=False, vocab=9, images=3, lengths=[3, 5, 5, 2], row_image=[2, 0, 2, 1],
         label_smoothing=0.0),
    # Xu et al.'s doubly stochastic penalty on the last layer's head-averaged cross-attention
    dict(name="penalty", grid=(2, 3), features=4, dim=8, heads=2, ff=10, encoder_layers=1, decoder_layers=2,
         activation="gelu", tied=True, vocab=10, images=2, lengths=[5, 3, 4], row_image=[0, 1, 1],
         label_smoothing=0.1, doubly_stochastic=0.3),
    # ... on the mass beyond 1 only: 4 cells, captions of 6, 3 and 5 targets, so some cells pass 1 and some not
    dict(name="penalty_excess", grid=(2, 2), features=4, dim=8, heads=2, ff=10, encoder_layers=0, decoder_layers=1,
         activation="relu", tied=False, vocab=10, images=2, lengths=[5, 2, 4], row_image=[1, 1, 0],
         label_smoothing=0.0, doubly_stochastic=0.3, penalty="excess"),
]


def sinusoids(T, C):
    pe = torch.zeros(T, C)
    for p in range(T):
        for i in range(0, C, 2):
            angle = p / (10000.0 ** (i / C))
            pe[p, i] = math.sin(angle)
            if i + 1 < C:
                pe[p, i + 1] = math.cos(angle)
    return pe


def make_captions(lengths, vocab, rng):
    T = max(lengths)
    captions = np.zeros((len(lengths), T + 1), dtype=np.int32)
    for r, n in enumerate(lengths):
        captions[r, 0] = START
        captions[r, 1:n] = rng.integers(3, vocab, n - 1)
        captions[r, n] = END
    return captions


def run_variant(v, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    (H, W), D, C, V = v["grid"], v["features"], v["dim"], v["vocab"]
    L = H * W
    enc_layer = nn.TransformerEncoderLayer(C, v["heads"], v["ff"], dropout=0.0, activation=v["activation"],
                                           batch_first=True, norm_first=True)
    dec_layer = nn.TransformerDecoderLayer(C, v["heads"], v["ff"], dropout=0.0, activation=v["activation"],
                                           batch_first=True, norm_first=True)
    encoder = nn.TransformerEncoder(enc_layer, v["encoder_layers"], norm=nn.LayerNorm(C),
                                    enable_nested_tensor=False) if v["encoder_layers"] else None
    decoder = nn.TransformerDecoder(dec_layer, v["decoder_layers"], norm=nn.LayerNorm(C))
    # Non-trivial layer norms, and float32-representable values everywhere.
    with torch.no_grad():
        for module in [encoder, decoder]:
            if module is None:
                continue
            for name, p in module.named_parameters():
                if "norm" in name:
                    p.copy_(torch.from_numpy(rng.uniform(0.6, 1.4, p.shape) if name.endswith("weight")
                                             else rng.uniform(-0.3, 0.3, p.shape)))
                elif name.endswith("bias"):
                    p.copy_(torch.from_numpy(rng.uniform(-0.2, 0.2, p.shape)))
                p.copy_(p.float().double())
    weights = {
        "transformer.grid.weight": rng.uniform(-0.5, 0.5, (C, D)),
        "transformer.grid.bias": rng.uniform(-0.2, 0.2, (C,)),
        "transformer.grid.rows": rng.normal(0, 0.5, (H, C)),
        "transformer.grid.columns": rng.normal(0, 0.5, (W, C)),
        "transformer.embedding.weight": rng.normal(0, 1.0 / math.sqrt(C), (V, C)),
        "transformer.out.bias": rng.uniform(-0.2, 0.2, (V,)),
    }
    if not v["tied"]:
        weights["transformer.out.weight"] = rng.uniform(-0.4, 0.4, (V, C))
    P = {k: torch.tensor(np.asarray(a, dtype=np.float32).astype(np.float64), requires_grad=True)
         for k, a in weights.items()}
    modules = {"transformer.decoder.": decoder}
    if encoder is not None:
        modules["transformer.encoder."] = encoder
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            P[prefix + name] = p

    z_images = torch.tensor(rng.normal(0, 1.0, (v["images"], L, D)).astype(np.float32).astype(np.float64),
                            requires_grad=True)
    captions = make_captions(v["lengths"], V, rng)
    row_image = torch.tensor(v["row_image"])
    T = captions.shape[1] - 1
    inputs, targets = torch.from_numpy(captions[:, :T]).long(), torch.from_numpy(captions[:, 1:]).long()

    m = F.linear(z_images, P["transformer.grid.weight"], P["transformer.grid.bias"])
    m = m + (P["transformer.grid.rows"][:, None, :] + P["transformer.grid.columns"][None, :, :]).reshape(L, C)
    memory = encoder(m) if encoder is not None else m
    memory_rows = memory[row_image]
    x = F.embedding(inputs, P["transformer.embedding.weight"]) * math.sqrt(C) + sinusoids(T, C)
    causal = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
    selfs, crosses, h = [], [], x
    for layer in decoder.layers:  # the maps, from the modules' own attention with need_weights
        n1 = layer.norm1(h)
        selfs.append(layer.self_attn(n1, n1, n1, attn_mask=causal, need_weights=True,
                                     average_attn_weights=False)[1])
        h_mid = h + layer.self_attn(n1, n1, n1, attn_mask=causal, need_weights=False)[0]
        n2 = layer.norm2(h_mid)
        crosses.append(layer.multihead_attn(n2, memory_rows, memory_rows, need_weights=True,
                                            average_attn_weights=False)[1])
        h = layer(h, memory_rows, tgt_mask=causal)
    out = decoder(x, memory_rows, tgt_mask=causal)
    assert torch.allclose(decoder.norm(h), out, atol=1e-12)
    out_weight = P["transformer.embedding.weight"] if v["tied"] else P["transformer.out.weight"]
    logits = F.linear(out, out_weight, P["transformer.out.bias"])
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=PAD,
                           label_smoothing=v["label_smoothing"])
    lam = v.get("doubly_stochastic", 0.0)
    if lam:
        # lambda * mean over captions of sum over cells of (1 - the cell's mass over the words)^2
        alpha = crosses[-1].mean(dim=1) * (targets != PAD)[:, :, None]
        gap = 1.0 - alpha.sum(dim=1)
        if v.get("penalty") == "excess":  # only the mass beyond 1
            gap = torch.clamp(gap, max=0.0)
            assert (gap < 0).any() and (gap == 0).any(), "the fixture should have cells on both sides of 1"
        loss = loss + lam * (gap ** 2).sum() / alpha.shape[0]
    loss.backward()

    tensors = [(name, p.detach().numpy().astype(np.float32)) for name, p in P.items()]
    tensors += [("input.z_images", z_images.detach().numpy().astype(np.float32)),
                ("input.captions", captions),
                ("input.row_image", np.asarray(v["row_image"], dtype=np.int32)),
                ("input.label_smoothing", np.asarray([v["label_smoothing"]], dtype=np.float32)),
                ("expected.loss", np.asarray([loss.item()])),
                ("expected.logits", logits.detach().numpy())]
    for l, (a, b) in enumerate(zip(selfs, crosses)):
        tensors += [(f"expected.self.{l}", a.detach().numpy()), (f"expected.cross.{l}", b.detach().numpy())]
    tensors += [("grad." + name, p.grad.numpy()) for name, p in P.items()]
    tensors.append(("grad.input.z_images", z_images.grad.numpy()))
    shape = dict(grid_h=H, grid_w=W, features=D, dim=C, heads=v["heads"], ff=v["ff"], vocab=V,
                 encoder_layers=v["encoder_layers"], decoder_layers=v["decoder_layers"],
                 gelu=int(v["activation"] == "gelu"), tied=int(v["tied"]), images=v["images"])
    if lam:
        shape["lambda"] = lam
        shape["excess"] = int(v.get("penalty") == "excess")
    path = os.path.join(FIXTURES, f"transformer_{v['name']}.safetensors")
    save_safetensors(path, tensors, {"shape": " ".join(f"{k}={val}" for k, val in shape.items())})
    print(f"  {v['name']}: loss {loss.item():.6f}; {os.path.getsize(path)} bytes")


def main():
    for i, variant in enumerate(VARIANTS):
        run_variant(variant, seed=3000 + i)


if __name__ == "__main__":
    main()
