/* Vector math shared by stylecond's CPU kernels (cpu_kernels.c, cpu_attention.c): e^x for x <= 0 and the
 * exact (erf) GELU, on AVX-512 (16 lanes), AVX2 (8 lanes) or one float.
 *
 * e^x = 2^n * p(f) with x log2(e) = n + f, f in [0, 1), p a degree-5 fit of 2^f (relative error < 1e-7);
 * x below -87 is clamped (e^-87 ~ 1e-38).
 * erf(z), z >= 0: 1 - t (a1 + t (a2 + ...)) e^(-z^2), t = 1 / (1 + p z) (Abramowitz-Stegun 7.1.26, absolute
 * error < 1.5e-7); GELU(x) = x / 2 (1 + sign(x) erf(|x| / sqrt 2)).
 */
#ifndef STYLECOND_CPU_MATH_H
#define STYLECOND_CPU_MATH_H

#include <immintrin.h>
#include <math.h>

#define SC_LOG2E 1.44269504088896341f
#define SC_EXP_POLY(FMA, C, F)                                                                            \
    FMA(FMA(FMA(FMA(FMA(C(1.8762329451963535e-3f), F, C(8.992584031321787e-3f)), F,                      \
                    C(5.5823604462297595e-2f)), F, C(2.40154529886721e-1f)), F, C(6.931529681766321e-1f)), \
        F, C(9.999999269249829e-1f))
#define SC_ERF_POLY(FMA, C, T)                                                                            \
    FMA(FMA(FMA(FMA(C(1.061405429f), T, C(-1.453152027f)), T, C(1.421413741f)), T, C(-0.284496736f)), T,   \
        C(0.254829592f))
#define SC_ERF_P 0.3275911f
#define SC_SQRT1_2 0.70710678118654752f

static inline float sc_fma1(float a, float b, float c) { return a * b + c; }
#define SC_C1(v) (v)

static inline float sc_exp1(float x) {
    const float t = fmaxf(x, -87.f) * SC_LOG2E, n = floorf(t), f = t - n;
    return SC_EXP_POLY(sc_fma1, SC_C1, f) * ldexpf(1.f, (int)n);
}

static inline float sc_gelu1(float x) {
    const float z = fabsf(x) * SC_SQRT1_2, t = 1.f / (1.f + SC_ERF_P * z);
    const float erf = 1.f - t * SC_ERF_POLY(sc_fma1, SC_C1, t) * sc_exp1(-z * z);
    return 0.5f * x * (1.f + copysignf(erf, x));
}

#if defined(__AVX512F__)
#define SC_C16(v) _mm512_set1_ps(v)
static inline __m512 sc_exp16(__m512 x) {
    const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, SC_C16(-87.f)), SC_C16(SC_LOG2E));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(SC_EXP_POLY(_mm512_fmadd_ps, SC_C16, f), _mm512_castsi512_ps(e));
}

static inline __m512 sc_gelu16(__m512 x) {
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), SC_C16(SC_SQRT1_2));
    const __m512 t = _mm512_div_ps(SC_C16(1.f), _mm512_fmadd_ps(SC_C16(SC_ERF_P), z, SC_C16(1.f)));
    const __m512 tail = _mm512_mul_ps(_mm512_mul_ps(t, SC_ERF_POLY(_mm512_fmadd_ps, SC_C16, t)),
                                      sc_exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)));
    const __m512 erf = _mm512_sub_ps(SC_C16(1.f), tail);
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 signed_erf = _mm512_mask_sub_ps(erf, neg, _mm512_setzero_ps(), erf);
    return _mm512_mul_ps(_mm512_mul_ps(SC_C16(0.5f), x), _mm512_add_ps(SC_C16(1.f), signed_erf));
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
#define SC_C8(v) _mm256_set1_ps(v)
static inline __m256 sc_exp8(__m256 x) {
    const __m256 t = _mm256_mul_ps(_mm256_max_ps(x, SC_C8(-87.f)), SC_C8(SC_LOG2E));
    const __m256 n = _mm256_floor_ps(t), f = _mm256_sub_ps(t, n);
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(SC_EXP_POLY(_mm256_fmadd_ps, SC_C8, f), _mm256_castsi256_ps(e));
}

static inline __m256 sc_gelu8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.f);
    const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), SC_C8(SC_SQRT1_2));
    const __m256 t = _mm256_div_ps(SC_C8(1.f), _mm256_fmadd_ps(SC_C8(SC_ERF_P), z, SC_C8(1.f)));
    const __m256 tail = _mm256_mul_ps(_mm256_mul_ps(t, SC_ERF_POLY(_mm256_fmadd_ps, SC_C8, t)),
                                      sc_exp8(_mm256_mul_ps(_mm256_xor_ps(z, sign), z)));
    const __m256 erf = _mm256_xor_ps(_mm256_sub_ps(SC_C8(1.f), tail), _mm256_and_ps(x, sign));
    return _mm256_mul_ps(_mm256_mul_ps(SC_C8(0.5f), x), _mm256_add_ps(SC_C8(1.f), erf));
}
#endif

#endif
