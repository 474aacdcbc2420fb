/* stylecond's CPU decode-attention kernel (built with cpu_kernels.c into one library by
 * stylecond/kernels/native.py): one decoding step of multi-head self-attention over a preallocated KV
 * cache, the new key and value written into the cache first.
 *
 * For B rows and H heads of width D (a multiple of 16, at most 512), at position `pos`:
 *   qkv [B, 3 * H * D] float32: the fused input projection of the new position (q, then k, then v);
 *   keys, values [B, H, M, D] float32 or bfloat16 (`kv_bf16`): k and v are stored at [b, h, pos];
 *   valid [B, valid_stride] bool or NULL: key j <= pos is attended where valid[b, j] (the new position
 *   always is);
 *   out [B, H * D] float32 = softmax(scale * q k^T over the valid keys 0..pos) v, per head.
 * Scores, softmax and the weighted sum run in float32 (bfloat16 keys and values are widened exactly).
 *
 * Why: at decoding shapes (3 rows x 16 heads, ~100 keys) torch's attention costs ~90 us per call in
 * isolation and ~150 us inside the model, against ~55 us here, close to reading the cache's bytes; and the
 * cache write, head split and mask conversion it needs around it are gone. Vectorized dot products and
 * exponential (AVX-512 or AVX2, cpu_math.h); the (row, head) pairs are split across OpenMP threads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_math.h"

#define LANES 16

#if !defined(__AVX512F__) && !(defined(__AVX2__) && defined(__FMA__))
#error "stylecond decode attention needs AVX2+FMA or AVX-512"
#endif

static inline float bf16_to_float(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t float_to_bf16(float f) { /* round to nearest even, as torch's .to(bfloat16) */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* s[j] = e^(s[j] - mx) for s[j] <= mx (cpu_math.h). */
static void exp_shifted(float *s, int64_t n, float mx) {
    int64_t j = 0;
#if defined(__AVX512F__)
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(s + j, sc_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), _mm512_set1_ps(mx))));
#else
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, sc_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(mx))));
#endif
    for (; j < n; ++j) s[j] = sc_exp1(s[j] - mx);
}

/* Scratch for one head's scores, grown as needed (one per thread). */
static __thread float *scores_buf;
static __thread int64_t scores_size;

static float *scores_scratch(int64_t n) {
    if (n > scores_size) {
        float *p = (float *)realloc(scores_buf, (size_t)n * sizeof(float));
        if (!p) return NULL;
        scores_buf = p;
        scores_size = n;
    }
    return scores_buf;
}

/* q . k over D (a multiple of 16) for float32 or bfloat16 (BF16) keys. */
static inline __attribute__((always_inline)) float dot(const float *q, const void *k, int64_t D, int BF16) {
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < D; d += 16) {
        const __m512 kv = BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(
                                     _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)k + d))), 16))
                               : _mm512_loadu_ps((const float *)k + d);
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), kv, acc);
    }
    return _mm512_reduce_add_ps(acc);
#else
    __m256 acc = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) {
        const __m256 kv = BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(
                                     _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)k + d))), 16))
                               : _mm256_loadu_ps((const float *)k + d);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), kv, acc);
    }
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
#endif
}

/* One head: o [D] = softmax(scale * q . k_j over the valid keys j < n) v, where key j is valid if `ok` is NULL,
 * ok[j], or j == `always`; zeros when no key is valid. kc, vc: [n, D] float32 or bfloat16 (bf16). s: [n]
 * scratch. */
static void attend_head(const float *q, const void *kc, const void *vc, int64_t n, int64_t D, int bf16,
                        const uint8_t *ok, int64_t always, float scale, float *s, float *o) {
    float mx = -3.0e38f;
    int any = 0;
    for (int64_t j = 0; j < n; ++j)
        s[j] = scale * (bf16 ? dot(q, (const uint16_t *)kc + j * D, D, 1) : dot(q, (const float *)kc + j * D, D, 0));
    for (int64_t j = 0; j < n; ++j)
        if (!ok || ok[j] || j == always) {
            any = 1;
            if (s[j] > mx) mx = s[j]; /* the valid keys' maximum */
        }
    float acc[512];
    for (int64_t d = 0; d < D; ++d) acc[d] = 0.f;
    if (!any) {
        for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
        return;
    }
    exp_shifted(s, n, mx);
    if (ok)
        for (int64_t j = 0; j < n; ++j) s[j] = (ok[j] || j == always) ? s[j] : 0.f;
    float part[LANES] = {0}, total = 0.f;
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; ++l) part[l] += s[j + l];
    for (; j < n; ++j) total += s[j];
    for (int l = 0; l < LANES; ++l) total += part[l];
    if (bf16) {
        for (int64_t j = 0; j < n; ++j)
            if (s[j] != 0.f)
                for (int64_t d = 0; d < D; ++d) acc[d] += s[j] * bf16_to_float(((const uint16_t *)vc)[j * D + d]);
    } else {
        for (int64_t j = 0; j < n; ++j)
            if (s[j] != 0.f)
                for (int64_t d = 0; d < D; ++d) acc[d] += s[j] * ((const float *)vc)[j * D + d];
    }
    const float inv = 1.f / total;
    for (int64_t d = 0; d < D; ++d) o[d] = acc[d] * inv;
}

/* Self-attention (see the top). Returns 0, -1 if out of memory, -2 for a bad shape. */
int stylecond_decode_attention(const float *qkv, int64_t B, int64_t H, int64_t D, void *keys, void *values,
                               int64_t M, int64_t pos, int kv_bf16, const uint8_t *valid,
                               int64_t valid_stride, float scale, float *out, int num_threads) {
    if (B < 1 || H < 1 || D < LANES || D % LANES || D > 512 || pos < 0 || pos >= M) return -2;
    const int64_t width = H * D;
    int failed = 0;
#pragma omp parallel for schedule(static) num_threads(num_threads) reduction(| : failed)
    for (int64_t bh = 0; bh < B * H; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        const float *q = qkv + b * 3 * width + h * D, *k_new = q + width, *v_new = q + 2 * width;
        const int64_t head = bh * M * D; /* offset of keys[b, h, 0, 0] */
        float *s = scores_scratch(pos + 1);
        if (!s) {
            failed = 1;
            continue;
        }
        if (kv_bf16) {
            uint16_t *kc = (uint16_t *)keys + head, *vc = (uint16_t *)values + head;
            for (int64_t d = 0; d < D; ++d) {
                kc[pos * D + d] = float_to_bf16(k_new[d]);
                vc[pos * D + d] = float_to_bf16(v_new[d]);
            }
        } else {
            memcpy((float *)keys + head + pos * D, k_new, (size_t)D * sizeof(float));
            memcpy((float *)values + head + pos * D, v_new, (size_t)D * sizeof(float));
        }
        const size_t elem = kv_bf16 ? 2 : 4;
        attend_head(q, (const char *)keys + head * elem, (const char *)values + head * elem, pos + 1, D, kv_bf16,
                    valid ? valid + b * valid_stride : NULL, pos, scale, s, out + b * width + h * D);
    }
    return failed ? -1 : 0;
}

/* Cross-attention of one position: q [B, H * D] (row stride q_stride) over keys, values [B, H, S, D] float32
 * contiguous, key j of row b attended where valid[b, j] (valid [B, S] or NULL); a row without any valid key
 * gets zeros. out [B, H * D]. Returns 0, -1 if out of memory, -2 for a bad shape. */
int stylecond_cross_attention(const float *q, int64_t q_stride, int64_t B, int64_t H, int64_t D,
                              const float *keys, const float *values, int64_t S, const uint8_t *valid,
                              float scale, float *out, int num_threads) {
    if (B < 1 || H < 1 || D < LANES || D % LANES || D > 512 || S < 1) return -2;
    int failed = 0;
#pragma omp parallel for schedule(static) num_threads(num_threads) reduction(| : failed)
    for (int64_t bh = 0; bh < B * H; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        float *s = scores_scratch(S);
        if (!s) {
            failed = 1;
            continue;
        }
        attend_head(q + b * q_stride + h * D, keys + bh * S * D, values + bh * S * D, S, D, 0,
                    valid ? valid + b * S : NULL, -1, scale, s, out + b * H * D + h * D);
    }
    return failed ? -1 : 0;
}
