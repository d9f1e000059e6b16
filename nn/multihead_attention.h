#ifndef NN_MULTIHEAD_ATTENTION_H
#define NN_MULTIHEAD_ATTENTION_H

#include <stddef.h>

/* Scaled dot-product attention over heads (Vaswani et al. 2017), the core of
 * PyTorch's nn.MultiheadAttention between its input and output projections:
 * for each batch item b and head h (channels h*dh .. (h+1)*dh - 1 of C,
 * dh = C / heads)
 *   P = softmax(Q_h K_h^T / sqrt(dh), over the keys a query may see)   [queries, keys]
 *   out_h = P V_h
 * A query may see key j when j < key_lengths[b] (key padding; NULL = all)
 * and, with causal set, when j <= i + query_offset for query i (its
 * position among the keys: 0 in training, the cached length with a
 * key/value cache). q is [batch, queries, C] with rows q_stride floats
 * apart, k and v [batch, keys, C] with rows kv_stride apart (so a fused
 * [Q K V] projection needs no copy); out is [batch, queries, C]. With
 * kv_items set, item b attends to the keys and values of item kv_items[b]
 * (k and v then hold those items: several caption rows read one image's
 * grid; key_lengths stays per query item). probs
 * ([batch, heads, queries, keys], zero where masked) is kept for the
 * backward, and is what users look at. */
typedef struct {
    int batch, queries, keys, channels, heads;
    int causal, query_offset;
    int q_stride, kv_stride;
    const int *kv_items; /* NULL: item b's own */
} MhaShape;

void mha_forward(float *out, float *probs, const float *q, const float *k, const float *v, const int *key_lengths,
                 const MhaShape *shape);

/* Scratch floats mha_backward needs. */
size_t mha_workspace_floats(const MhaShape *shape);

/* Accumulates into d_q, d_k and d_v (same layouts and strides as q, k, v;
 * items sharing keys add their gradients into them). d_probs (layout of
 * probs; NULL = none) is a gradient the loss puts on the probabilities
 * themselves, as an attention penalty does. */
void mha_backward(float *d_q, float *d_k, float *d_v, const float *d_out, const float *d_probs, const float *probs,
                  const float *q, const float *k, const float *v, const MhaShape *shape, float *workspace);

#endif
