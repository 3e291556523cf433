/* CPU ops of the PFGM math (backend.h "PFGM math" group and the row reductions it uses):
 * row norms and row softmax, the perturbation kernel (spec §1.4), the log-domain field
 * weights and the normalized target (spec §1.2-1.3, §3.6), the loss (spec §1.5), prior
 * directions (spec §1.7), the ODE drift with the z_exp substitution (spec §1.8) and the
 * double-precision Runge-Kutta combinations and scipy norms (spec §1.9).
 *
 * Every op has one loop nest: the reference mode runs it serially, the fast mode runs the
 * same nest under OpenMP over rows (or elements). Each row's arithmetic is independent of
 * the thread count, so both modes give the same bits; accumulations are in double. On AVX2
 * processors the row softmax (attention, spec §3.1) is 8 lanes at a time with the SIMD exp
 * of cpu_simd.h (about 1 ulp from expf) in both modes, so they still agree to the bit. */
#include "backend/cpu/cpu.h"

#include "backend/cpu/cpu_simd.h"
#include "util/philox_impl.h"

#include <float.h>
#include <math.h>

/* Rows x cols above which a loop is worth threading. */
#define PAR_MIN 65536

/* sum of squares in double: in order (reference), or in SIMD lanes (fast path; the lane
 * split depends only on the build, so the bits are the same run to run). */
static double sumsq_plain(const float *x, int64_t n) {
    double acc = 0.0;
    for (int64_t c = 0; c < n; ++c) acc += (double)x[c] * (double)x[c];
    return acc;
}

static double sumsq_simd(const float *x, int64_t n) {
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < n; ++c) acc += (double)x[c] * (double)x[c];
    return acc;
}

static pfgm_status cpu_row_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld,
                                 float *out) {
    const int ref = cpu_reference(be);
#pragma omp parallel for schedule(static) if (!ref && rows * cols > PAR_MIN)
    for (int64_t r = 0; r < rows; ++r) out[r] = (float)(ref ? sumsq_plain(x + r * ld, cols) : sumsq_simd(x + r * ld, cols));
    return PFGM_OK;
}

#if PFGM_CPU_SIMD
/* One row: max, e^(x - max) summed in float lanes and added in double, then the scaling;
 * the last partial vector is masked (its missing lanes count as -inf, e^-inf = 0). */
PFGM_AVX2 static void softmax_row_avx2(float *row, int64_t cols) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vmx = ninf;
    for (int64_t c = 0; c < cols; c += 8) {
        const int64_t k = cols - c;
        const __m256 v = k >= 8 ? _mm256_loadu_ps(row + c)
                                : _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + c, simd_tail_mask(k)),
                                                   _mm256_castsi256_ps(simd_tail_mask(k)));
        vmx = _mm256_max_ps(vmx, v);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx);
    float mx = lanes[0];
    for (int j = 1; j < 8; ++j) mx = lanes[j] > mx ? lanes[j] : mx;
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < cols; c += 8) {
        const int64_t k = cols - c;
        if (k >= 8) {
            const __m256 e = simd_exp(_mm256_sub_ps(_mm256_loadu_ps(row + c), vm));
            _mm256_storeu_ps(row + c, e);
            acc = _mm256_add_ps(acc, e);
        } else {
            const __m256i m = simd_tail_mask(k);
            const __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + c, m), _mm256_castsi256_ps(m));
            const __m256 e = simd_exp(_mm256_sub_ps(v, vm));
            _mm256_maskstore_ps(row + c, m, e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / simd_hsum_pd(acc)));
    for (int64_t c = 0; c < cols; c += 8) {
        const int64_t k = cols - c;
        if (k >= 8) {
            _mm256_storeu_ps(row + c, _mm256_mul_ps(_mm256_loadu_ps(row + c), inv));
        } else {
            const __m256i m = simd_tail_mask(k);
            _mm256_maskstore_ps(row + c, m, _mm256_mul_ps(_mm256_maskload_ps(row + c, m), inv));
        }
    }
}
#endif

static pfgm_status cpu_softmax_rows(pfgm_backend *be, int64_t rows, int64_t cols, float *x) {
#if PFGM_CPU_SIMD
    if (cpu_have_avx2()) {
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && rows * cols > PAR_MIN)
        for (int64_t r = 0; r < rows; ++r) softmax_row_avx2(x + r * cols, cols);
        return PFGM_OK;
    }
#endif
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && rows * cols > PAR_MIN)
    for (int64_t r = 0; r < rows; ++r) {
        float *row = x + r * cols;
        float mx = row[0];
        for (int64_t c = 1; c < cols; ++c) mx = row[c] > mx ? row[c] : mx;
        double sum = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t c = 0; c < cols; ++c) row[c] *= inv;
    }
    return PFGM_OK;
}

/* ---- perturbation kernel (spec §1.4) ----------------------------------------------------- */

/* Normals are drawn in stack chunks of this many elements (no allocation). */
#define NORMAL_CHUNK 256

/* sum of squares of normals [offset, offset + n) of r, in double. */
static double normal_sumsq(const pfgm_rng *r, uint64_t offset, int64_t n) {
    float buf[NORMAL_CHUNK];
    double acc = 0.0;
    for (int64_t s = 0; s < n; s += NORMAL_CHUNK) {
        int64_t len = n - s < NORMAL_CHUNK ? n - s : NORMAL_CHUNK;
        pfgm_rng_normal(r, offset + (uint64_t)s, (size_t)len, buf);
        for (int64_t j = 0; j < len; ++j) acc += (double)buf[j] * (double)buf[j];
    }
    return acc;
}

static pfgm_status cpu_perturb(pfgm_backend *be, const pfgm_rng *r, int64_t B, int64_t N, const float *x,
                               int64_t M, double tau, double sigma_end, int restrict_M, float *out,
                               float *x_net, float *z_net) {
    const uint64_t n4 = pfgm_philox_ceil4((uint64_t)N), stride = pfgm_philox_perturb_stride((uint64_t)N);
    const int64_t m_restricted = (int64_t)((double)M * 0.7); /* int(M * 0.7), as the authors */
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && B > 1 && B * N > 4096)
    for (int64_t k = 0; k < B; ++k) {
        const uint64_t base = (uint64_t)k * stride;
        float u[2], gz;
        pfgm_rng_uniform(r, base, 2, u);
        pfgm_rng_normal(r, base + 2, 1, &gz);
        float z0 = fabsf(gz * (float)sigma_end); /* abs() before restrict_M (spec §6.1) */
        double m = (double)u[0] * (double)M;
        if (restrict_M && z0 < 0.005f) m = (double)u[1] * (double)m_restricted;
        double mult = (double)(float)pow(1.0 + tau, m);
        double radius = sigma_end * sqrt(normal_sumsq(r, base + 4, N)) * mult; /* |eps_x| (1+tau)^m */
        float *row = out + k * (N + 1);
        pfgm_rng_normal(r, base + 4 + n4, (size_t)N, row); /* direction, independent of eps_x */
        double usq = 0.0;
        for (int64_t j = 0; j < N; ++j) usq += (double)row[j] * (double)row[j];
        double scale = usq > 0.0 ? radius / sqrt(usq) : 0.0;
        const float *xk = x + k * N;
        for (int64_t j = 0; j < N; ++j) row[j] = xk[j] + (float)(scale * (double)row[j]);
        float z = (float)((double)z0 * mult);
        row[N] = z;
        if (x_net)
            for (int64_t j = 0; j < N; ++j) x_net[k * N + j] = row[j];
        if (z_net) z_net[k] = z > 1e-10f ? z : 1e-10f;
    }
    return PFGM_OK;
}

/* ---- normalized empirical field (spec §1.2-1.3, §3.6) ------------------------------------ */

static inline double field_d2(double a2, const float *b2, const float *g, int64_t i) {
    double d2 = a2 + (double)b2[i] - 2.0 * (double)g[i];
    return d2 > DBL_MIN ? d2 : DBL_MIN; /* clamp rounding negatives; d = 0 -> DBL_MIN */
}

static pfgm_status cpu_field_weights(pfgm_backend *be, int64_t B, int64_t L, double half_exponent,
                                     const float *a2, const float *b2, float *gc, float *csum) {
    for (int64_t b = 0; b < B; ++b)
        if (!isfinite(a2[b]))
            return pfgm_error(PFGM_ERR_NUMERIC, "field targets: perturbed point %lld has a non-finite norm",
                              (long long)b);
    for (int64_t i = 0; i < L; ++i)
        if (!isfinite(b2[i]))
            return pfgm_error(PFGM_ERR_NUMERIC, "field targets: charge %lld has a non-finite norm", (long long)i);
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && B > 1 && B * L > 4096)
    for (int64_t b = 0; b < B; ++b) {
        float *g = gc + b * L;
        const double a = (double)a2[b];
        /* The largest logit -h ln d^2 belongs to the nearest charge: subtract it before exp. */
        double dmin = field_d2(a, b2, g, 0);
        for (int64_t i = 1; i < L; ++i) {
            double d2 = field_d2(a, b2, g, i);
            dmin = d2 < dmin ? d2 : dmin;
        }
        /* Charges with h ln(d^2/d^2_min) > 110 get w < e^-110 < FLT_TRUE_MIN: 0 in float, so
         * they skip the log and exp. */
        const double cutoff = dmin * exp(110.0 / half_exponent);
        double sum = 0.0;
        for (int64_t i = 0; i < L; ++i) {
            double d2 = field_d2(a, b2, g, i);
            g[i] = d2 > cutoff ? 0.0f : (float)exp(-half_exponent * log(d2 / dmin)); /* (d_min/d)^(N+1) */
            sum += (double)g[i];
        }
        double inv = 1.0 / sum, cs = 0.0; /* sum >= 1: the nearest charge has w = 1 */
        for (int64_t i = 0; i < L; ++i) {
            g[i] = (float)((double)g[i] * inv);
            cs += (double)g[i];
        }
        csum[b] = (float)cs;
    }
    return PFGM_OK;
}

static pfgm_status cpu_field_finish(pfgm_backend *be, int64_t B, int64_t N, double gamma, const float *csum,
                                    const float *perturbed, float *e) {
    const double sqrt_n = sqrt((double)N);
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && B > 1 && B * N > PAR_MIN)
    for (int64_t b = 0; b < B; ++b) {
        float *row = e + b * (N + 1);
        const float *xt = perturbed + b * (N + 1);
        const double cs = (double)csum[b];
        double sq = 0.0;
        for (int64_t j = 0; j <= N; ++j) {
            double v = (j < N ? (double)row[j] : 0.0) - cs * (double)xt[j]; /* E = C.Y - (sum c) x~ */
            row[j] = (float)v;
            sq += v * v;
        }
        double den = sqrt(sq) + gamma;
        double scale = den > 0.0 ? sqrt_n / den : 0.0; /* |E| + gamma = 0: no direction, target 0 */
        for (int64_t j = 0; j <= N; ++j) row[j] = (float)((double)row[j] * scale);
    }
    return PFGM_OK;
}

/* ---- loss (spec §1.5) ---------------------------------------------------------------------- */

static pfgm_status cpu_loss_mse(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                                const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss) {
    const int64_t D = N + 1;
    const double s = reduce_mean ? 1.0 / (double)D : 0.5;
    const double gscale = 2.0 * s / (double)B; /* d/dpred of (1/B) s (pred - target)^2 */
    if (grad_x) {
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && B * N > PAR_MIN)
        for (int64_t b = 0; b < B; ++b)
            for (int64_t d = 0; d < N; ++d)
                grad_x[b * N + d] = (float)(gscale * ((double)pred_x[b * N + d] - (double)target[b * D + d]));
    }
    if (grad_z)
        for (int64_t b = 0; b < B; ++b) grad_z[b] = (float)(gscale * ((double)pred_z[b] - (double)target[b * D + N]));
    /* Serial, fixed order (columns 0..N of each row): the reported loss has the same bits for
     * any thread count. */
    double total = 0.0;
    for (int64_t b = 0; b < B; ++b) {
        double acc = 0.0;
        for (int64_t d = 0; d < N; ++d) {
            double v = (double)pred_x[b * N + d] - (double)target[b * D + d];
            acc += v * v;
        }
        double v = (double)pred_z[b] - (double)target[b * D + N];
        acc += v * v;
        total += s * acc;
    }
    *loss = total / (double)B;
    return PFGM_OK;
}

/* ---- prior directions (spec §1.7) ---------------------------------------------------------- */

static pfgm_status cpu_sphere_points(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, uint64_t stride,
                                     int64_t B, int64_t N, const double *radii, float *x, int64_t ldx) {
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && B > 1 && B * N > 4096)
    for (int64_t k = 0; k < B; ++k) {
        float *row = x + k * ldx;
        pfgm_rng_normal(r, offset + (uint64_t)k * stride, (size_t)N, row);
        double sq = 0.0;
        for (int64_t j = 0; j < N; ++j) sq += (double)row[j] * (double)row[j];
        double scale = sq > 0.0 ? radii[k] / sqrt(sq) : 0.0;
        for (int64_t j = 0; j < N; ++j) row[j] = (float)(scale * (double)row[j]);
    }
    return PFGM_OK;
}

/* ---- backward ODE (spec §1.8-1.9) --------------------------------------------------------- */

/* The authors' v_z for every rho = |v_x|/sqrt(N) != 1, rho > 1 included (there
 * gamma rho / (1 - rho) < 0 is squared into |E|, a finite value); only the singular point
 * |1 - rho| <= RHO_SINGULAR is guarded, with v_z = -0, the limit of their formula from both
 * sides (docs/numerics.md §6). */
#define RHO_SINGULAR (4.0 * DBL_EPSILON)

static pfgm_status cpu_ode_drift(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                                 double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                                 int64_t *guard_count) {
    const double sqrt_n = sqrt((double)N);
    int64_t guards = 0;
#pragma omp parallel for schedule(static) reduction(+ : guards) if (!cpu_reference(be) && B > 1 && B * N > PAR_MIN)
    for (int64_t b = 0; b < B; ++b) {
        const float zf = z[b];
        const float *vx = v_x + b * N;
        float vz = v_z[b];
        if ((double)zf < z_exp && gamma > 0.0) {
            double sq = 0.0;
            for (int64_t j = 0; j < N; ++j) sq += (double)vx[j] * (double)vx[j];
            const double rho = sqrt(sq) / sqrt_n;
            if (fabs(1.0 - rho) > RHO_SINGULAR) {
                const double ex = gamma * rho / (1.0 - rho); /* |E_x| from rho = a/(a + gamma); < 0 for rho > 1 */
                const double en = sqrt(ex * ex + (double)zf * (double)zf);
                vz = (float)(-sqrt_n * (double)zf / (en + gamma));
            } else {
                vz = -0.0f; /* |E_x| -> infinity from either side */
                ++guards;
            }
        }
        if (v_z_used) v_z_used[b] = vz;
        const float dt_dz = 1.0f / (vz + 1e-5f); /* float32, in the authors' order */
        float *kr = k + b * (N + P);
        for (int64_t j = 0; j < N; ++j) kr[j] = zf * (vx[j] * dt_dz);
        for (int64_t j = 0; j < P; ++j) kr[N + j] = zf;
    }
    if (guard_count) *guard_count = guards;
    return PFGM_OK;
}

static pfgm_status cpu_ode_init_state(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *x, double z,
                                      double *y) {
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && B * (N + P) > PAR_MIN)
    for (int64_t b = 0; b < B; ++b) {
        double *yr = y + b * (N + P);
        for (int64_t j = 0; j < N; ++j) yr[j] = (double)x[b * N + j];
        for (int64_t j = 0; j < P; ++j) yr[N + j] = z;
    }
    return PFGM_OK;
}

static pfgm_status cpu_ode_combine(pfgm_backend *be, int64_t rows, int64_t cols, const double *y, const double *h,
                                   int nk, const double *coef, const float *const *k, double *y_out, float *x_out,
                                   int64_t nx) {
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && rows * cols > PAR_MIN)
    for (int64_t r = 0; r < rows; ++r) {
        const double hr = h ? h[r] : 1.0;
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t i = r * cols + c;
            double acc = 0.0;
            for (int j = 0; j < nk; ++j) acc += coef[j] * (double)k[j][i];
            double v = y[i] + hr * acc; /* scipy: y + h * (K^T a) */
            if (y_out) y_out[i] = v;
            if (x_out && c < nx) x_out[r * nx + c] = (float)v;
        }
    }
    return PFGM_OK;
}

static pfgm_status cpu_ode_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const double *num_y, const double *h,
                                 int nk, const double *coef, const float *const *k, const double *ya,
                                 const double *yb, double rtol, double atol, double *row_out) {
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && rows > 1 && rows * cols > PAR_MIN)
    for (int64_t r = 0; r < rows; ++r) {
        const double hr = h ? h[r] : 1.0;
        double acc = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t i = r * cols + c;
            double s = 0.0;
            for (int j = 0; j < nk; ++j) s += coef[j] * (double)k[j][i];
            double v = (num_y ? num_y[i] : 0.0) + s * hr;
            double mag = fabs(ya[i]);
            if (yb && fabs(yb[i]) > mag) mag = fabs(yb[i]);
            double q = v / (atol + rtol * mag);
            acc += q * q;
        }
        row_out[r] = acc;
    }
    return PFGM_OK;
}

void pfgm_cpu_math_ops_init(pfgm_backend *be) {
    be->row_sumsq = cpu_row_sumsq;
    be->softmax_rows = cpu_softmax_rows;
    be->perturb = cpu_perturb;
    be->field_weights = cpu_field_weights;
    be->field_finish = cpu_field_finish;
    be->loss_mse = cpu_loss_mse;
    be->sphere_points = cpu_sphere_points;
    be->ode_drift = cpu_ode_drift;
    be->ode_init_state = cpu_ode_init_state;
    be->ode_combine = cpu_ode_combine;
    be->ode_sumsq = cpu_ode_sumsq;
}
