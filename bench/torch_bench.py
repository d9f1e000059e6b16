#!/usr/bin/python3
"""The PyTorch side of `caption bench --torch`: the same Show, Attend and Tell
model in float32, on the same weights file and input, at the same thread
count, timed the way the C benchmark times it. Prints one JSON object:

  cnn_ms               CNN forward, batch 1, eval mode (running batch-norm
                       statistics), torch.inference_mode; median of repeats
  caption_ms_beam3     CNN + beam search (beam 3) from the normalised input
                       tensor the C side wrote; median of repeats
  caption_words_beam3  words in that caption (should equal the C caption's)
  train_img_per_s      forward + backward + clip_grad_norm_ + AdamW step at
                       the given batch, 5 captions per image of `words` words
                       + <end>, dropout, label smoothing 0.1, lambda from the
                       model; mean over timed steps after one warm-up step
  threads, torch_version

The model code follows tests/reference/sat_reference.py (its encoder-spec
parser, tensor list and non-additive score functions are reused), with the additive
attention's feature projection computed once per image, as nn/ does, and
the same beam search as nn/decode.c: at each step the best 2k candidates
over the live hypotheses; a candidate ending in <end> is kept as finished;
search stops when no live hypothesis can beat the worst of k finished ones
or at max_length words (every live one then gets <end> appended).

A Transformer model (decoder "transformer") runs as PyTorch's own
nn.TransformerEncoder / nn.TransformerDecoder with the file's weights; they
have no key/value cache, so its beam search runs the decoder over the whole
prefix at each step, as their users do (the C side keeps a cache).

Run by `caption bench --torch` with Debian's /usr/bin/python3 (python3-torch);
exits with status 3 when torch cannot be imported.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # caption bench reports this and omits the torch_* keys
    print(json.dumps({"error": f"cannot import torch: {error}"}))
    sys.exit(3)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import sat_reference as ref  # noqa: E402  (sets float64 as default; undone below)
import transformer_reference as tref  # noqa: E402

torch.set_default_dtype(torch.float32)

PAD, START, END, UNK = 0, 1, 2, 3
LR, WEIGHT_DECAY, CLIP, LABEL_SMOOTHING = 1e-3, 0.0, 5.0, 0.1  # tools/flickr8k.json / caption train defaults


# ---------------------------------------------------------------- the model, float32

def load_weights(path):
    """The model's tensors as float32 and its metadata. Unlike the reference's
    reader this takes F16 (half-precision models) and skips a checkpoint's
    optimizer.* tensors, so any file sat_model_load reads works here."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    metadata = header.pop("__metadata__", {})
    data, tensors = raw[8 + length:], {}
    dtypes = {"F32": np.float32, "F16": np.float16}
    for name, entry in header.items():
        if name.startswith("optimizer.") or entry["dtype"] not in dtypes:
            continue
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=np.dtype(dtypes[entry["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(array.astype(np.float32).reshape(entry["shape"]))
    return tensors, metadata


class Model:
    def __init__(self, path):
        tensors, metadata = load_weights(path)
        self.cfg = json.loads(metadata["config"])
        self.cfg["image_size"] = json.loads(metadata["preprocess"])["image_size"]
        self.layers, _, _ = ref.parse_encoder(self.cfg["encoder"], self.cfg["image_size"])
        specs = ref.tensor_specs(self.cfg)
        self.P = {n: tensors[n].contiguous().requires_grad_(True) for n, _, _, t in specs if t}
        self.stats = {n: tensors[n].clone() for n, _, _, t in specs if not t}
        self.decayed = [n for n, _, decay, t in specs if t and decay]
        self.attention = self.cfg["decoder"] in ("attention", "adaptive")
        self.additive = self.cfg["score"] == "additive"
        self.grid_encoder = None
        if self.cfg["decoder"] != "transformer" and self.cfg.get("encoder_layers", 0) > 0:
            # An LSTM's grid encoder (nn/model.h): PyTorch's pre-norm encoder of width D, no dropout.
            D = self.layers[-1][1]
            layer = nn.TransformerEncoderLayer(d_model=D, nhead=self.cfg["heads"], dim_feedforward=self.cfg["ff_dim"],
                                               dropout=0.0, activation=self.cfg["activation"], batch_first=True,
                                               norm_first=True)
            self.grid_encoder = nn.TransformerEncoder(layer, self.cfg["encoder_layers"], norm=nn.LayerNorm(D),
                                                      enable_nested_tensor=False)
            with torch.no_grad():
                for name, p in self.grid_encoder.named_parameters():
                    p.copy_(self.P["grid_encoder.encoder." + name])
                    self.P["grid_encoder.encoder." + name] = p

    def encode(self, images, training):
        """[B, 3, S, S] -> z [B, L, D]."""
        P, x, block_input = self.P, images, images
        shortcuts = ref.residual_layers(self.cfg["encoder"])
        for l, (_, _, stride, pool) in enumerate(self.layers):
            if l + 1 in shortcuts:
                block_input = x
            x = F.conv2d(x, P[f"encoder.conv{l}.weight"], stride=stride, padding=1)
            x = F.batch_norm(x, self.stats[f"encoder.bn{l}.running_mean"], self.stats[f"encoder.bn{l}.running_var"],
                             P[f"encoder.bn{l}.weight"], P[f"encoder.bn{l}.bias"],
                             training=training, momentum=0.1, eps=1e-5)
            x = F.relu(x + block_input if l in shortcuts else x)
            if pool:
                x = F.max_pool2d(x, 2)
        z = x.flatten(2).transpose(1, 2)
        if self.grid_encoder is None:
            return z
        H, W, D = x.shape[2], x.shape[3], x.shape[1]
        m = F.linear(z, P["grid_encoder.grid.weight"], P["grid_encoder.grid.bias"])
        m = m + (P["grid_encoder.grid.rows"][:, None, :] + P["grid_encoder.grid.columns"][None, :, :]).reshape(H * W, D)
        self.grid_encoder.train(training)
        return self.grid_encoder(m)

    def init_state(self, z):
        P, z_mean = self.P, z.mean(1)
        h = torch.tanh(F.linear(z_mean, P["decoder.init_h.weight"], P["decoder.init_h.bias"]))
        c = torch.tanh(F.linear(z_mean, P["decoder.init_c.weight"], P["decoder.init_c.bias"]))
        return z_mean, h, c

    def project(self, z):
        """The additive score's W_z z_i + b, which no step changes."""
        if not (self.attention and self.additive):
            return None
        return F.linear(z, self.P["decoder.attention.feature.weight"], self.P["decoder.attention.feature.bias"])

    def step(self, emb, h, c, z, z_mean, projection, training=False):
        """One decoder step for R rows: returns logits [R, V], h, c, alpha [R, L] (or None)."""
        P, alpha = self.P, None
        if self.attention:
            if self.additive:
                query = F.linear(h, P["decoder.attention.query.weight"]).unsqueeze(1)
                scores = torch.tanh(projection + query) @ P["decoder.attention.score.weight"]
            else:
                scores = ref.attention_scores(P, self.cfg["score"], h, z)
            alpha = torch.softmax(scores, dim=1)
            context = torch.bmm(alpha.unsqueeze(1), z).squeeze(1)
            if self.cfg["decoder"] == "adaptive":  # the visual sentinel (nn/sentinel.h)
                g = torch.sigmoid(F.linear(emb, P["decoder.sentinel.input_weight"])
                                  + F.linear(h, P["decoder.sentinel.hidden_weight"], P["decoder.sentinel.bias"]))
                u = F.linear(g * torch.tanh(c), P["decoder.sentinel.projection"])
                e_s = ref.attention_scores(P, self.cfg["score"], h, u.unsqueeze(1)).squeeze(1)
                beta = torch.sigmoid(torch.logsumexp(scores, dim=1) - e_s).unsqueeze(1)
                zhat = beta * context + (1 - beta) * u
            else:
                beta = torch.sigmoid(F.linear(h, P["decoder.gate.weight"], P["decoder.gate.bias"]))
                zhat = beta * context
        else:
            zhat = z_mean
        x = F.dropout(torch.cat([emb, zhat], dim=1), p=self.cfg.get("input_dropout", 0.0), training=training)
        h, c = torch.lstm_cell(x, (h, c), P["decoder.lstm.weight_ih"],
                               P["decoder.lstm.weight_hh"], P["decoder.lstm.bias"], None)
        out = (emb + F.linear(h, P["decoder.out_hidden.weight"], P["decoder.out_hidden.bias"])
               + F.linear(zhat, P["decoder.out_context.weight"], P["decoder.out_context.bias"]))
        return out, h, c, alpha

    def logits(self, out):
        tied = "decoder.out.weight" not in self.P  # the output layer reads the embedding (config "tied")
        weight = self.P["decoder.embedding.weight"] if tied else self.P["decoder.out.weight"]
        return F.linear(out, weight, self.P["decoder.out.bias"])


# ---------------------------------------------------------------- beam search (nn/decode.c's)

class TransformerModel(Model):
    """The Transformer decoder (nn/transformer.h) as PyTorch's own
    nn.TransformerEncoder / nn.TransformerDecoder (pre-norm), whose
    parameters are the file's tensors of the same names."""

    def __init__(self, path):
        super().__init__(path)
        cfg, C = self.cfg, self.cfg["embed_dim"]
        common = dict(d_model=C, nhead=cfg["heads"], dim_feedforward=cfg["ff_dim"], dropout=cfg["dropout"],
                      activation=cfg["activation"], batch_first=True, norm_first=True)
        self.encoder = (nn.TransformerEncoder(nn.TransformerEncoderLayer(**common), cfg["encoder_layers"],
                                              norm=nn.LayerNorm(C), enable_nested_tensor=False)
                        if cfg["encoder_layers"] else None)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**common), cfg["decoder_layers"],
                                             norm=nn.LayerNorm(C))
        for prefix, module in (("transformer.encoder.", self.encoder), ("transformer.decoder.", self.decoder)):
            if module is None:
                continue
            with torch.no_grad():
                for name, p in module.named_parameters():
                    p.copy_(self.P[prefix + name])
                    self.P[prefix + name] = p  # the optimiser trains the modules' own parameters
        self.attention = True

    def memory(self, z, training):
        P, C = self.P, self.cfg["embed_dim"]
        H = W = int(round(math.sqrt(z.shape[1])))
        m = F.linear(z, P["transformer.grid.weight"], P["transformer.grid.bias"])
        m = m + (P["transformer.grid.rows"][:, None, :] + P["transformer.grid.columns"][None, :, :]).reshape(H * W, C)
        for module in (self.encoder, self.decoder):
            if module is not None:
                module.train(training)
        return self.encoder(m) if self.encoder is not None else m

    def decode(self, tokens, memory):
        """Logits [R, T, V] of the words tokens [R, T] over memory [R, L, C]."""
        P, C, T = self.P, self.cfg["embed_dim"], tokens.shape[1]
        x = F.embedding(tokens, P["transformer.embedding.weight"]) * math.sqrt(C) + tref.sinusoids(T, C).float()
        causal = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
        out = self.decoder(x, memory, tgt_mask=causal)
        weight = P["transformer.embedding.weight"] if self.cfg["tied"] else P["transformer.out.weight"]
        return F.linear(out, weight, P["transformer.out.bias"])


def choose(alive, logp, beam, finished):
    """One beam step over the live hypotheses' log-probabilities [rows, V]:
    the best 2k candidates; one ending in <end> is finished. Returns the next
    live hypotheses, their parents and their last tokens."""
    totals = logp + torch.tensor([lp for lp, _ in alive]).unsqueeze(1)
    totals[:, torch.tensor([PAD, START, UNK])] = -math.inf
    best = torch.topk(totals.flatten(), min(2 * beam, totals.numel()))
    next_alive, parents, tokens_next = [], [], []
    V = totals.shape[1]
    for total, index in zip(best.values.tolist(), best.indices.tolist()):
        if len(next_alive) == beam:
            break
        row, token = divmod(index, V)
        if token == END:
            add_finished(finished, beam, total, alive[row][1])
            continue
        next_alive.append((total, alive[row][1] + [token]))
        parents.append(row)
        tokens_next.append(token)
    return next_alive, parents, tokens_next


def caption_transformer(model, image, beam, max_length):
    """Beam search as nn/decode.c's; PyTorch's TransformerDecoder has no
    key/value cache, so each step runs the decoder over the whole prefix,
    as its users do."""
    memory = model.memory(model.encode(image.unsqueeze(0), training=False), training=False)
    alive, finished = [(0.0, [])], []
    for step in range(max_length + 1):
        if search_done(alive, finished, beam):
            break
        tokens = torch.tensor([[START] + t for _, t in alive])
        logp = torch.log_softmax(model.decode(tokens, memory.expand(len(alive), -1, -1))[:, -1], dim=1)
        if step == max_length:
            for r, (lp, words) in enumerate(alive):
                add_finished(finished, beam, lp + logp[r, END].item(), words)
            break
        alive, _, _ = choose(alive, logp, beam, finished)
    return max(finished, key=lambda f: f[0])[1]


def caption(model, image, beam, max_length):
    if isinstance(model, TransformerModel):
        return caption_transformer(model, image, beam, max_length)
    z = model.encode(image.unsqueeze(0), training=False)
    z_mean, h, c = model.init_state(z)
    projection = model.project(z)
    alive = [(0.0, [])]  # (logprob, tokens)
    prev = torch.tensor([START])
    finished = []  # (score, tokens)
    embedding = model.P["decoder.embedding.weight"]
    for step in range(max_length + 1):
        if search_done(alive, finished, beam):
            break
        rows = len(alive)
        out, h_next, c_next, _ = model.step(F.embedding(prev, embedding), h, c, z.expand(rows, -1, -1),
                                            z_mean.expand(rows, -1),
                                            None if projection is None else projection.expand(rows, -1, -1))
        logp = torch.log_softmax(model.logits(out), dim=1)
        if step == max_length:
            for r, (lp, tokens) in enumerate(alive):
                add_finished(finished, beam, lp + logp[r, END].item(), tokens)
            break
        alive, parents, tokens_next = choose(alive, logp, beam, finished)
        if alive:
            index = torch.tensor(parents)
            h, c, prev = h_next[index], c_next[index], torch.tensor(tokens_next)
    return max(finished, key=lambda f: f[0])[1]


def add_finished(finished, beam, score, tokens):
    if len(finished) < beam:
        finished.append((score, tokens))
        return
    worst = min(range(len(finished)), key=lambda i: finished[i][0])
    if finished[worst][0] < score:
        finished[worst] = (score, tokens)


def search_done(alive, finished, beam):
    if not alive:
        return True
    if len(finished) < beam:
        return False
    return max(lp for lp, _ in alive) <= min(score for score, _ in finished)


# ---------------------------------------------------------------- training

def train_loss(model, images, captions, row_image):
    if isinstance(model, TransformerModel):
        memory = model.memory(model.encode(images, training=True), training=True)
        steps = captions.shape[1] - 1
        logits = model.decode(captions[:, :steps], memory[row_image])
        return F.cross_entropy(logits.reshape(-1, logits.shape[2]), captions[:, 1:].reshape(-1), ignore_index=PAD,
                               label_smoothing=LABEL_SMOOTHING)
    z = model.encode(images, training=True)
    projection = model.project(z)
    z, projection = z[row_image], None if projection is None else projection[row_image]
    z_mean, h, c = model.init_state(z)
    steps = captions.shape[1] - 1
    embedded = F.embedding(captions[:, :steps], model.P["decoder.embedding.weight"])
    logits, alphas = [], []
    for t in range(steps):
        out, h, c, alpha = model.step(embedded[:, t], h, c, z, z_mean, projection, training=True)
        logits.append(model.logits(F.dropout(out, p=model.cfg["dropout"], training=True)))
        alphas.append(alpha)
    logits = torch.stack(logits)  # [T, R, V]
    targets = captions[:, 1:].t().reshape(-1)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[2]), targets, ignore_index=PAD,
                           label_smoothing=LABEL_SMOOTHING)
    if model.attention:
        mask = (captions[:, 1:].t() != PAD).float().unsqueeze(2)
        coverage = (torch.stack(alphas) * mask).sum(0)
        loss = loss + model.cfg["doubly_stochastic"] * ((1 - coverage) ** 2).sum(1).mean()
    return loss


def train_throughput(model, batch, captions_per_image, words, steps):
    generator = torch.Generator().manual_seed(12345)
    S, V = model.cfg["image_size"], model.cfg["vocab_size"]
    images = torch.randn(batch, 3, S, S, generator=generator)
    rows = batch * captions_per_image
    captions = torch.full((rows, words + 2), END, dtype=torch.long)
    captions[:, 0] = START
    captions[:, 1:words + 1] = torch.randint(4, V, (rows, words), generator=generator)
    row_image = torch.arange(rows) // captions_per_image
    params = list(model.P.values())
    decayed = set(model.decayed)
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in model.P.items() if n in decayed], "weight_decay": WEIGHT_DECAY},
         {"params": [p for n, p in model.P.items() if n not in decayed], "weight_decay": 0.0}], lr=LR)

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        loss = train_loss(model, images, captions, row_image)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        optimizer.step()
        return loss.item()

    # The median step, as caption bench times its own: one step slowed by
    # the shared host does not move it.
    milliseconds, loss = median_ms(one_step, steps)
    if not math.isfinite(loss):
        raise RuntimeError(f"training loss became {loss}")
    return batch * 1e3 / milliseconds


# ---------------------------------------------------------------- timing

def median_ms(function, repeats):
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    times.sort()
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else 0.5 * (times[mid - 1] + times[mid])
    return 1e3 * median, result


def load_image(path, size):
    if path:
        with open(path, "rb") as f:
            data = f.read()
        image = torch.frombuffer(bytearray(data), dtype=torch.float32)
        return image.reshape(3, size, size).clone()
    return torch.randn(3, size, size, generator=torch.Generator().manual_seed(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the safetensors weights file")
    parser.add_argument("--image", help="raw float32 [3, S, S] normalised input (default: random)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=30)
    parser.add_argument("--cnn-repeats", type=int, default=31)
    parser.add_argument("--caption-repeats", type=int, default=11)
    parser.add_argument("--train-steps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set; only matters for inter-op parallelism, unused here
    _, metadata = load_weights(args.model)
    transformer = json.loads(metadata["config"])["decoder"] == "transformer"
    model = TransformerModel(args.model) if transformer else Model(args.model)
    image = load_image(args.image, model.cfg["image_size"])
    with torch.inference_mode():
        cnn_ms, _ = median_ms(lambda: model.encode(image.unsqueeze(0), training=False), args.cnn_repeats)
        caption_ms, tokens = median_ms(lambda: caption(model, image, 3, args.max_length), args.caption_repeats)
    train = train_throughput(model, args.train_batch, args.captions_per_image, args.words, args.train_steps)
    print(json.dumps({"cnn_ms": cnn_ms, "caption_ms_beam3": caption_ms, "caption_words_beam3": len(tokens),
                      "train_img_per_s": train, "threads": torch.get_num_threads(),
                      "torch_version": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
