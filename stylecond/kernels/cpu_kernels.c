/* stylecond's CPU decoding kernel (built and loaded by stylecond/kernels/native.py): an int4-weight
 * linear layer with activations quantized on the fly, optionally fused with the layer norm before it and
 * the GELU or residual add after it.
 *
 * y[M, N] = act(norm(x)[M, K] @ W^T + bias) + residual, with W[n, k] = scale[n, g] * q[n, k] + low[n, g] for k in group g
 * (G inputs per group, q in 0..15) and x quantized per row and group (symmetric, one float scale per G
 * inputs) to one int8 term, or two (`precise`: ~15 bits; see quantize_activations).
 *
 * Weight layout (16 output features interleaved, so that each 32-bit lane of a vector accumulates one
 * output): packed is [N / 16, K / 8, 64] bytes; in block b, k-step j, the 4 bytes of lane l (0..15) hold
 * q[16b + l, 8j + i] (low nibble of byte i) and q[16b + l, 8j + 4 + i] (high nibble), i = 0..3.
 * scale and low are float16, [N / 16, K / G, 16]. N is a multiple of 16, G of 16 and K of G.
 *
 * Paths: AVX512-VNNI (vpdpbusd) or AVX2 (vpmaddubsw + vpmaddwd), picked at compile time; the output
 * features are split across OpenMP threads (the caller passes torch's thread count).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_math.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define SC_ISA 512
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#define SC_ISA 256
#else
#error "stylecond int4 kernel needs AVX2+F16C+FMA or AVX512-VNNI"
#endif

#ifndef SC_PREFETCH
#define SC_PREFETCH 4096 /* bytes ahead of the weight read (measured: 1 KB 18.5, 4 KB 24.5 GB/s) */
#endif

int stylecond_int4_isa(void) { return SC_ISA; }

/* Per-row, per-group activations on the weights' groups: u = x * 127 / amax, q1 = round(u) and, when
 * `precise`, q2 = round(256 * (u - q1)): x = xs * (256 * q1 + q2) to 15 bits (else x = xs * q1, 8 bits).
 * xq [M, 2, K] (q1 then q2), xs [M, K / G], xsum = xs * sum of the integer levels [M, K / G] (the sum of the
 * dequantized activations, so that the `low` term sees the same inputs as the `scale` term). */
static void quantize_activations(const float *x, int64_t M, int64_t K, int64_t G, int precise, int8_t *xq,
                                 float *xs, float *xsum) {
    const int64_t ng = K / G;
    for (int64_t r = 0; r < M; ++r) {
        for (int64_t g = 0; g < ng; ++g) {
            const float *p = x + r * K + g * G;
            int8_t *q1 = xq + r * 2 * K + g * G, *q2 = q1 + K;
            float amax = 0.f;
            int32_t sum1 = 0, sum2 = 0;
#if SC_ISA == 512
            __m512 vmax = _mm512_setzero_ps();
            for (int64_t i = 0; i < G; i += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(p + i)));
            amax = _mm512_reduce_max_ps(vmax);
            const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f), k256 = _mm512_set1_ps(256.f);
            __m512i vs1 = _mm512_setzero_si512(), vs2 = _mm512_setzero_si512();
            for (int64_t i = 0; i < G; i += 16) {
                const __m512 u = _mm512_mul_ps(_mm512_loadu_ps(p + i), inv);
                const __m512i a = _mm512_cvtps_epi32(u);
                vs1 = _mm512_add_epi32(vs1, a);
                _mm_storeu_si128((__m128i *)(q1 + i), _mm512_cvtsepi32_epi8(a));
                if (precise) {
                    const __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(u, _mm512_cvtepi32_ps(a)), k256));
                    const __m128i c8 = _mm512_cvtsepi32_epi8(c);
                    vs2 = _mm512_add_epi32(vs2, _mm512_cvtepi8_epi32(c8));
                    _mm_storeu_si128((__m128i *)(q2 + i), c8);
                }
            }
            sum1 = _mm512_reduce_add_epi32(vs1);
            sum2 = _mm512_reduce_add_epi32(vs2);
#else
            for (int64_t i = 0; i < G; ++i) amax = fmaxf(amax, fabsf(p[i]));
            const float inv = amax > 0.f ? 127.f / amax : 0.f;
            for (int64_t i = 0; i < G; ++i) {
                const float u = p[i] * inv, a = nearbyintf(u);
                q1[i] = (int8_t)a;
                sum1 += q1[i];
                if (precise) {
                    const float c = nearbyintf((u - a) * 256.f);
                    q2[i] = (int8_t)(c > 127.f ? 127.f : c);
                    sum2 += q2[i];
                }
            }
#endif
            const float scale = precise ? amax / 127.f / 256.f : amax / 127.f;
            xs[r * ng + g] = scale;
            xsum[r * ng + g] = scale * (precise ? 256.f * (float)sum1 + (float)sum2 : (float)sum1);
        }
    }
}

static inline int32_t load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

#if SC_ISA == 512
/* Outputs 16b .. 16b + 15 of rows r0 .. r0 + MR - 1 into y (row stride N); PRECISE: two-term activations. */
static inline __attribute__((always_inline)) void block_tile(
    const uint8_t *w, const uint16_t *ws, const uint16_t *wl, const int8_t *xq, const float *xs,
    const float *xsum, int64_t K, int64_t G, int64_t r0, int MR, int PRECISE, const float *bias, float *y,
    int64_t N) {
    const int64_t ng = K / G, steps = G / 8;
    const __m512i nib = _mm512_set1_epi8(0x0F);
    __m512 f[4];
    for (int r = 0; r < 4; ++r) f[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
        __m512i alo[4], ahi[4], blo[4], bhi[4];
        for (int r = 0; r < 4; ++r) alo[r] = ahi[r] = blo[r] = bhi[r] = _mm512_setzero_si512();
        const uint8_t *wg = w + g * steps * 64;
        for (int64_t j = 0; j < steps; ++j) {
            _mm_prefetch((const char *)(wg + 64 * j + SC_PREFETCH), _MM_HINT_T0);
            const __m512i b = _mm512_loadu_si512((const void *)(wg + 64 * j));
            const __m512i lo = _mm512_and_si512(b, nib);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), nib);
            for (int r = 0; r < MR; ++r) {
                const int8_t *xr = xq + (r0 + r) * 2 * K + g * G + 8 * j;
                alo[r] = _mm512_dpbusd_epi32(alo[r], lo, _mm512_set1_epi32(load4(xr)));
                ahi[r] = _mm512_dpbusd_epi32(ahi[r], hi, _mm512_set1_epi32(load4(xr + 4)));
                if (PRECISE) {
                    blo[r] = _mm512_dpbusd_epi32(blo[r], lo, _mm512_set1_epi32(load4(xr + K)));
                    bhi[r] = _mm512_dpbusd_epi32(bhi[r], hi, _mm512_set1_epi32(load4(xr + K + 4)));
                }
            }
        }
        const __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(ws + 16 * g)));
        const __m512 lw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wl + 16 * g)));
        for (int r = 0; r < MR; ++r) {
            const int64_t i = (r0 + r) * ng + g;
            __m512i acc = _mm512_add_epi32(alo[r], ahi[r]);
            if (PRECISE) acc = _mm512_add_epi32(_mm512_slli_epi32(acc, 8), _mm512_add_epi32(blo[r], bhi[r]));
            f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(sw, _mm512_set1_ps(xs[i])), f[r]);
            f[r] = _mm512_fmadd_ps(lw, _mm512_set1_ps(xsum[i]), f[r]);
        }
    }
    const __m512 bv = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) _mm512_storeu_ps(y + (r0 + r) * N, _mm512_add_ps(f[r], bv));
}
#else
static inline __attribute__((always_inline)) void block_tile(
    const uint8_t *w, const uint16_t *ws, const uint16_t *wl, const int8_t *xq, const float *xs,
    const float *xsum, int64_t K, int64_t G, int64_t r0, int MR, int PRECISE, const float *bias, float *y,
    int64_t N) {
    const int64_t ng = K / G, steps = G / 8;
    const __m256i nib = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {  /* lanes 8h .. 8h + 7: bytes 32h .. 32h + 31 of each 64 */
        __m256 f[4];
        for (int r = 0; r < 4; ++r) f[r] = _mm256_setzero_ps();
        for (int64_t g = 0; g < ng; ++g) {
            __m256i acc[4], acc2[4];
            for (int r = 0; r < 4; ++r) acc[r] = acc2[r] = _mm256_setzero_si256();
            const uint8_t *wg = w + g * steps * 64 + 32 * h;
            for (int64_t j = 0; j < steps; ++j) {
                _mm_prefetch((const char *)(wg + 64 * j + SC_PREFETCH), _MM_HINT_T0);
                const __m256i b = _mm256_loadu_si256((const __m256i *)(wg + 64 * j));
                const __m256i lo = _mm256_and_si256(b, nib);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), nib);
                for (int r = 0; r < MR; ++r) {
                    const int8_t *xr = xq + (r0 + r) * 2 * K + g * G + 8 * j;
                    const __m256i p = _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load4(xr))),
                        _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load4(xr + 4))));
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, ones));
                    if (PRECISE) {
                        const __m256i p2 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load4(xr + K))),
                            _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load4(xr + K + 4))));
                        acc2[r] = _mm256_add_epi32(acc2[r], _mm256_madd_epi16(p2, ones));
                    }
                }
            }
            const __m256 sw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ws + 16 * g + 8 * h)));
            const __m256 lw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wl + 16 * g + 8 * h)));
            for (int r = 0; r < MR; ++r) {
                const int64_t i = (r0 + r) * ng + g;
                __m256i a = acc[r];
                if (PRECISE) a = _mm256_add_epi32(_mm256_slli_epi32(a, 8), acc2[r]);
                f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_mul_ps(sw, _mm256_set1_ps(xs[i])), f[r]);
                f[r] = _mm256_fmadd_ps(lw, _mm256_set1_ps(xsum[i]), f[r]);
            }
        }
        const __m256 bv = bias ? _mm256_loadu_ps(bias + 8 * h) : _mm256_setzero_ps();
        for (int r = 0; r < MR; ++r) _mm256_storeu_ps(y + (r0 + r) * N + 8 * h, _mm256_add_ps(f[r], bv));
    }
}
#endif

/* x [M, K] -> layer norm of each row (biased variance, eps inside the square root) * w + b (b may be NULL). */
static void layer_norm_rows(const float *x, int64_t M, int64_t K, const float *w, const float *b, float eps,
                            float *out) {
    for (int64_t r = 0; r < M; ++r) {
        const float *p = x + r * K;
        float *o = out + r * K;
        float sum[16] = {0}, sq[16] = {0}, mean = 0.f, var = 0.f; /* K is a multiple of 16: 16 partial sums */
        for (int64_t i = 0; i < K; i += 16)
            for (int l = 0; l < 16; ++l) sum[l] += p[i + l];
        for (int l = 0; l < 16; ++l) mean += sum[l];
        mean /= (float)K;
        for (int64_t i = 0; i < K; i += 16)
            for (int l = 0; l < 16; ++l) sq[l] += (p[i + l] - mean) * (p[i + l] - mean);
        for (int l = 0; l < 16; ++l) var += sq[l];
        const float rstd = 1.f / sqrtf(var / (float)K + eps);
        for (int64_t i = 0; i < K; ++i) o[i] = (p[i] - mean) * rstd * w[i] + (b ? b[i] : 0.f);
    }
}

/* y [M, 16] block of row stride N: GELU (gelu) then + residual (row stride N; NULL = none). */
static inline void epilogue(float *y, const float *residual, int64_t M, int64_t N, int gelu) {
    for (int64_t r = 0; r < M; ++r) {
        float *p = y + r * N;
#if SC_ISA == 512
        __m512 v = _mm512_loadu_ps(p);
        if (gelu) v = sc_gelu16(v);
        if (residual) v = _mm512_add_ps(v, _mm512_loadu_ps(residual + r * N));
        _mm512_storeu_ps(p, v);
#else
        for (int h = 0; h < 16; h += 8) {
            __m256 v = _mm256_loadu_ps(p + h);
            if (gelu) v = sc_gelu8(v);
            if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + r * N + h));
            _mm256_storeu_ps(p + h, v);
        }
#endif
    }
}

/* Scratch for the quantized activations (and the normed rows), grown as needed (one per calling thread). */
static __thread int8_t *scratch_q;
static __thread float *scratch_f;
static __thread int64_t scratch_q_size, scratch_f_size;

static int ensure_scratch(int64_t q_bytes, int64_t f_count) {
    if (q_bytes > scratch_q_size) {
        int8_t *p = (int8_t *)realloc(scratch_q, (size_t)q_bytes);
        if (!p) return -1;
        scratch_q = p;
        scratch_q_size = q_bytes;
    }
    if (f_count > scratch_f_size) {
        float *p = (float *)realloc(scratch_f, (size_t)f_count * sizeof(float));
        if (!p) return -1;
        scratch_f = p;
        scratch_f_size = f_count;
    }
    return 0;
}

#define TILES(P)                                                                                 \
    do {                                                                                         \
        int64_t r0 = 0;                                                                          \
        for (; r0 + 4 <= M; r0 += 4) block_tile(w, ws, wl, xq, xs, xsum, K, G, r0, 4, P, bb, yb, N); \
        const int rest = (int)(M - r0);                                                          \
        if (rest == 3) block_tile(w, ws, wl, xq, xs, xsum, K, G, r0, 3, P, bb, yb, N);           \
        else if (rest == 2) block_tile(w, ws, wl, xq, xs, xsum, K, G, r0, 2, P, bb, yb, N);      \
        else if (rest == 1) block_tile(w, ws, wl, xq, xs, xsum, K, G, r0, 1, P, bb, yb, N);      \
    } while (0)

/* y [M, N] = act(norm(x) [M, K] @ dequant(W)^T + bias) + residual, where norm is the layer norm of each row
 * with norm_w [K] and norm_b [K] (norm_w NULL: no norm; norm_b NULL: no bias), act is GELU if `gelu`, bias
 * [N] and residual [M, N] are added if not NULL; `precise`: 15-bit activations (two int8 terms, twice the
 * dot products) instead of 8-bit. Returns 0, -1 if out of memory, -2 for a bad shape. */
int stylecond_int4_linear(const float *x, int64_t M, int64_t K, const uint8_t *packed,
                          const uint16_t *scale, const uint16_t *low, int64_t N, int64_t G,
                          const float *bias, float *y, int precise, int num_threads, const float *norm_w,
                          const float *norm_b, float norm_eps, const float *residual, int gelu) {
    if (M < 1 || N < 16 || N % 16 || G < 16 || G % 16 || K % G) return -2;
    const int64_t ng = K / G;
    if (ensure_scratch(2 * M * K, 2 * M * ng + (norm_w ? M * K : 0))) return -1;
    int8_t *xq = scratch_q;
    float *xs = scratch_f, *xsum = scratch_f + M * ng;
    if (norm_w) {
        float *normed = scratch_f + 2 * M * ng;
        layer_norm_rows(x, M, K, norm_w, norm_b, norm_eps, normed);
        x = normed;
    }
    quantize_activations(x, M, K, G, precise, xq, xs, xsum);
#pragma omp parallel for schedule(static) num_threads(num_threads)
    for (int64_t b = 0; b < N / 16; ++b) {
        const uint8_t *w = packed + b * (K / 8) * 64;
        const uint16_t *ws = scale + b * ng * 16, *wl = low + b * ng * 16;
        const float *bb = bias ? bias + 16 * b : NULL;
        float *yb = y + 16 * b;
        if (precise) TILES(1);
        else TILES(0);
        if (gelu || residual) epilogue(yb, residual ? residual + 16 * b : NULL, M, N, gelu);
    }
    return 0;
}
