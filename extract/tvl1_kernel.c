/* The TV-L1 primal-dual iterations of one frame pair at one warp, fused into one sweep per iteration.
 *
 * OpenCV's DualTVL1 (and extract/flow.py's tensor code) run each iteration as five passes over the
 * image (thresholding, divergence, primal update, forward gradient, dual update), each reading and
 * writing whole arrays. Here one sweep over the rows does all of it: row y's primal update needs the
 * dual variables of rows y and y - 1 *before* this iteration's dual update, and row y - 1's dual
 * update needs the new flow of rows y - 1 and y. So the sweep updates the flow of row y, then the
 * dual variables of row y - 1, in place, and every value is read while it is still in cache.
 *
 * The arithmetic is OpenCV's (tvl1flow.cpp: estimateV, divergence, estimateU, forwardGradient,
 * estimateDualVariables) with gamma = 0, and the stopping test is the same: the iterations stop
 * after the first one whose sum of squared flow updates is at most eps (epsilon^2 * H * W).
 * Compiled by extract/tvl1_cpu.py with gcc -O3; the x loops are written so that gcc vectorises them.
 */
#include <float.h>
#include <math.h>

/* Primal step of row y (Zach et al.'s TH operator, then u = v + theta * div p); returns the row's
 * sum of squared updates. zeros: w floats of 0, the dual variables above the first row. */
static double primal_row(int y, int w, float *restrict u1, float *restrict u2,
                         const float *restrict p11, const float *restrict p12,
                         const float *restrict p21, const float *restrict p22,
                         const float *restrict ix, const float *restrict iy,
                         const float *restrict grad, const float *restrict rho_c,
                         const float *restrict zeros, float l_t, float theta)
{
    const long o = (long)y * w;
    u1 += o; u2 += o; ix += o; iy += o; grad += o; rho_c += o;
    const float *q11 = p11 + o, *q21 = p21 + o, *q12 = p12 + o, *q22 = p22 + o;
    /* divergence: backward differences with p = 0 before the first column and row */
    const float *up12 = y > 0 ? q12 - w : zeros, *up22 = y > 0 ? q22 - w : zeros;
    float err = 0.0f;
#pragma omp simd reduction(+ : err)
    for (int j = 0; j < w; ++j) {
        const float l11 = j > 0 ? q11[j - 1] : 0.0f, l21 = j > 0 ? q21[j - 1] : 0.0f;
        const float a = u1[j], b = u2[j], gx = ix[j], gy = iy[j], g = grad[j];
        const float rho = rho_c[j] + (gx * a + gy * b);
        const float fi = g > FLT_EPSILON ? -rho / g : 0.0f;
        const float d = rho < -l_t * g ? l_t : (rho > l_t * g ? -l_t : fi);
        const float n1 = (a + d * gx) + theta * ((q11[j] - l11) + (q12[j] - up12[j]));
        const float n2 = (b + d * gy) + theta * ((q21[j] - l21) + (q22[j] - up22[j]));
        u1[j] = n1;
        u2[j] = n2;
        err += (n1 - a) * (n1 - a) + (n2 - b) * (n2 - b);
    }
    return (double)err;
}

static inline void dual_px(long i, float u1x, float u1y, float u2x, float u2y,
                           float *restrict p11, float *restrict p12, float *restrict p21, float *restrict p22,
                           float taut)
{
    const float ng1 = 1.0f + taut * sqrtf(u1x * u1x + u1y * u1y);
    const float ng2 = 1.0f + taut * sqrtf(u2x * u2x + u2y * u2y);
    p11[i] = (p11[i] + taut * u1x) / ng1;
    p12[i] = (p12[i] + taut * u1y) / ng1;
    p21[i] = (p21[i] + taut * u2x) / ng2;
    p22[i] = (p22[i] + taut * u2y) / ng2;
}

/* Dual step of row y: p = (p + taut * grad u) / (1 + taut * |grad u|), with forward differences
 * that are 0 on the last column and row. */
static void dual_row(int y, int h, int w, const float *restrict u1, const float *restrict u2,
                     float *restrict p11, float *restrict p12, float *restrict p21, float *restrict p22,
                     float taut)
{
    const long o = (long)y * w, e = o + w - 1;
    if (y < h - 1) {
        for (long i = o; i < e; ++i)
            dual_px(i, u1[i + 1] - u1[i], u1[i + w] - u1[i], u2[i + 1] - u2[i], u2[i + w] - u2[i],
                    p11, p12, p21, p22, taut);
        dual_px(e, 0.0f, u1[e + w] - u1[e], 0.0f, u2[e + w] - u2[e], p11, p12, p21, p22, taut);
    } else {
        for (long i = o; i < e; ++i)
            dual_px(i, u1[i + 1] - u1[i], 0.0f, u2[i + 1] - u2[i], 0.0f, p11, p12, p21, p22, taut);
        dual_px(e, 0.0f, 0.0f, 0.0f, 0.0f, p11, p12, p21, p22, taut);
    }
}

/* Up to n_iter iterations on one (h, w) image, in place on u1, u2 and the dual variables.
 * zeros: w floats of 0. Returns the number of iterations run; *converged is 1 when the last one met the stopping test. */
int tvl1_iterate(int h, int w, float *u1, float *u2, float *p11, float *p12, float *p21, float *p22,
                 const float *ix, const float *iy, const float *grad, const float *rho_c, const float *zeros,
                 float l_t, float theta, float taut, double eps, int n_iter, int *converged)
{
    *converged = 0;
    for (int k = 0; k < n_iter; ++k) {
        double err = 0.0;
        for (int y = 0; y < h; ++y) {
            err += primal_row(y, w, u1, u2, p11, p12, p21, p22, ix, iy, grad, rho_c, zeros, l_t, theta);
            if (y > 0)
                dual_row(y - 1, h, w, u1, u2, p11, p12, p21, p22, taut);
        }
        dual_row(h - 1, h, w, u1, u2, p11, p12, p21, p22, taut);
        if (err <= eps) {
            *converged = 1;
            return k + 1;
        }
    }
    return n_iter;
}
