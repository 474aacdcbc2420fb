/* stylecond's CPU decoding step (built with cpu_kernels.c and cpu_attention.c into one library by
 * stylecond/kernels/native.py): all the pre-norm transformer layers of one cached position in one call.
 *
 * Per layer (MusicGen's block, eval):
 *   x = x + out_proj(self_attention(in_proj(norm1(x))))          the new k, v written into the cache
 *   x = x + cross_out(cross_attention(cross_q(norm_cross(x))))   when the layer has cross-attention
 *   x = x + linear2(gelu(linear1(norm2(x))))
 * every linear an int4 layer of cpu_kernels.c with its norm, GELU and residual add fused. x [B, dim] is
 * updated in place. Why: a 24-layer step is ~150 kernel calls; from Python each costs a few microseconds
 * of interpreter, ctypes and allocation work (measured at the small size: 24.6 ms/step with the same fused
 * kernels called layer by layer from Python, 17.2 ms/step from here), here none.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const uint8_t *packed;
    const uint16_t *scale, *low;
    const float *bias; /* [n] or NULL */
    int64_t n, k, group;
    int32_t precise;
} sc_int4;

typedef struct {
    const float *weight, *bias; /* [dim]; bias may be NULL */
    float eps;
} sc_norm;

typedef struct {
    sc_norm norm1;
    sc_int4 in_proj, out_proj;
    void *keys, *values; /* self-attention cache [B, H, max_len, head_dim], float32 or bfloat16 */
    int32_t kv_bf16;
    sc_norm norm_cross; /* cross-attention: cross_q NULL packed = none */
    sc_int4 cross_q, cross_out;
    const float *cross_keys, *cross_values; /* [B, H, cross_len, head_dim] float32 */
    const uint8_t *cross_valid;             /* [B, cross_len] or NULL */
    int64_t cross_len;
    sc_norm norm2;
    sc_int4 linear1, linear2;
} sc_layer;

int stylecond_int4_linear(const float *x, int64_t M, int64_t K, const uint8_t *packed, const uint16_t *scale,
                          const uint16_t *low, int64_t N, int64_t G, const float *bias, float *y, int precise,
                          int num_threads, const float *norm_w, const float *norm_b, float norm_eps,
                          const float *residual, int gelu);
int stylecond_decode_attention(const float *qkv, int64_t B, int64_t H, int64_t D, void *keys, void *values,
                               int64_t M, int64_t pos, int kv_bf16, const uint8_t *valid, int64_t valid_stride,
                               float scale, float *out, int num_threads);
int stylecond_cross_attention(const float *q, int64_t q_stride, int64_t B, int64_t H, int64_t D,
                              const float *keys, const float *values, int64_t S, const uint8_t *valid,
                              float scale, float *out, int num_threads);

static int linear(const sc_int4 *w, const float *x, int64_t M, float *y, const sc_norm *norm,
                  const float *residual, int gelu, int threads) {
    return stylecond_int4_linear(x, M, w->k, w->packed, w->scale, w->low, w->n, w->group, w->bias, y, w->precise,
                                 threads, norm ? norm->weight : NULL, norm ? norm->bias : NULL,
                                 norm ? norm->eps : 0.f, residual, gelu);
}

static int shapes_ok(const sc_layer *L, int64_t dim) {
    const sc_int4 *lin[] = {&L->in_proj, &L->out_proj, &L->linear1, &L->linear2, &L->cross_q, &L->cross_out};
    for (int i = 0; i < 6; ++i)
        if (lin[i]->packed && (lin[i]->k < 1 || lin[i]->n < 1)) return 0;
    return L->in_proj.k == dim && L->in_proj.n == 3 * dim && L->out_proj.k == dim && L->out_proj.n == dim &&
           L->linear1.k == dim && L->linear2.k == L->linear1.n && L->linear2.n == dim &&
           (!L->cross_q.packed || (L->cross_q.k == dim && L->cross_q.n == dim && L->cross_out.k == dim &&
                                   L->cross_out.n == dim && L->cross_len > 0));
}

/* x [B, dim] (in place) through `n_layers` layers at cache position `pos`; valid [B, valid_stride] or NULL
 * (self-attention key validity); scratch: 6 * B * dim + B * ffn_dim floats (ffn_dim: the widest linear1).
 * Returns 0 or the first failing kernel's code (-1 out of memory, -2 bad shape). */
int stylecond_decode_layers(const sc_layer *layers, int64_t n_layers, float *x, int64_t B, int64_t dim,
                            int64_t heads, int64_t head_dim, int64_t max_len, int64_t pos, const uint8_t *valid,
                            int64_t valid_stride, float *scratch, int num_threads) {
    float *qkv = scratch, *att = qkv + 3 * B * dim, *other = att + B * dim, *ffn = other + B * dim;
    float *cur = x, *t;
    const float scale = 1.f / sqrtf((float)head_dim);
    int rc = 0;
#define SWAP() (t = cur, cur = other, other = t)
    for (int64_t i = 0; i < n_layers && !rc; ++i) {
        const sc_layer *L = layers + i;
        if (!shapes_ok(L, dim) || heads * head_dim != dim) return -2;
        rc = linear(&L->in_proj, cur, B, qkv, &L->norm1, NULL, 0, num_threads);
        if (!rc) rc = stylecond_decode_attention(qkv, B, heads, head_dim, L->keys, L->values, max_len, pos,
                                                 L->kv_bf16, valid, valid_stride, scale, att, num_threads);
        if (!rc) rc = linear(&L->out_proj, att, B, other, NULL, cur, 0, num_threads);
        if (!rc) SWAP();
        if (!rc && L->cross_q.packed) {
            rc = linear(&L->cross_q, cur, B, qkv, &L->norm_cross, NULL, 0, num_threads);
            if (!rc) rc = stylecond_cross_attention(qkv, dim, B, heads, head_dim, L->cross_keys, L->cross_values,
                                                    L->cross_len, L->cross_valid, scale, att, num_threads);
            if (!rc) rc = linear(&L->cross_out, att, B, other, NULL, cur, 0, num_threads);
            if (!rc) SWAP();
        }
        if (!rc) rc = linear(&L->linear1, cur, B, ffn, &L->norm2, NULL, 1, num_threads);
        if (!rc) rc = linear(&L->linear2, ffn, B, other, NULL, cur, 0, num_threads);
        if (!rc) SWAP();
    }
#undef SWAP
    if (!rc && cur != x)
        for (int64_t j = 0; j < B * dim; ++j) x[j] = cur[j];
    return rc;
}
