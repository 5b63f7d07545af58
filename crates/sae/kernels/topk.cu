// Row-wise TopK for wide rows (n up to ~2^20 columns, k <= TOPK_MAX_K), one thread block per row.
//
// Algorithm (exact; deterministic, ties broken by the lower column index):
//  1. Each value maps to an unsigned key whose integer order is the float order
//     (sign bit flipped for positives, all bits flipped for negatives; NaN -> 0, below -inf).
//  2. Radix select of the k-th largest key, 8 bits per pass from the most significant digit
//     (4 passes for f32, 2 for bf16): each pass builds a 256-bin shared-memory histogram of the
//     digit over the keys that match the prefix fixed so far, then walks the bins from the top
//     to find the digit where the running count reaches the k still to place.
//     Result: the threshold key T and `need_eq`, how many keys equal to T belong to the top k
//     (every key > T does: there are k - need_eq of them).
//  3. Compaction in column order: the block walks the row in tiles of blockDim columns; a
//     warp ballot + popc and a per-warp count in shared memory give each selected element its
//     slot. Keys > T fill slots [0, k-need_eq), the first need_eq keys == T fill the rest.
//  4. The k candidates (in shared memory) are ranked by (key desc, column asc): an O(k^2) rank
//     count, cheap for k <= 1024, and written to out_val / out_idx in descending order.
// Each pass re-reads the row from global memory (5 reads for f32, 3 for bf16; L2 absorbs part).
#include <cuda_bf16.h>
#include <stdint.h>

#define TOPK_THREADS 512
#define TOPK_WARPS (TOPK_THREADS / 32)
#define TOPK_MAX_K 1024

template <typename T> struct KeyOf;

template <> struct KeyOf<float> {
    typedef uint32_t K;
    static constexpr int BITS = 32;
    __device__ __forceinline__ static K key(float v) {
        uint32_t u = __float_as_uint(v);
        if (v != v) return 0u;  // NaN: below everything
        return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    }
};

template <> struct KeyOf<__nv_bfloat16> {
    typedef uint32_t K;  // 16 significant bits, kept in a u32 for the shared-memory code
    static constexpr int BITS = 16;
    __device__ __forceinline__ static K key(__nv_bfloat16 v) {
        uint32_t u = (uint32_t)__bfloat16_as_ushort(v);
        if ((u & 0x7F80u) == 0x7F80u && (u & 0x007Fu) != 0) return 0u;  // NaN
        return (u & 0x8000u) ? (~u & 0xFFFFu) : (u | 0x8000u);
    }
};

template <typename T>
__device__ void topk_row(const T *__restrict__ x, uint32_t n, uint32_t k, uint64_t row_stride,
                         T *__restrict__ out_val, uint32_t *__restrict__ out_idx) {
    typedef KeyOf<T> KO;
    typedef typename KO::K K;

    __shared__ uint32_t hist[256];
    __shared__ K s_prefix;
    __shared__ uint32_t s_kleft;
    __shared__ uint32_t warp_gt[TOPK_WARPS], warp_eq[TOPK_WARPS];
    __shared__ uint32_t s_base_gt, s_base_eq;
    __shared__ K cand_key[TOPK_MAX_K];
    __shared__ uint32_t cand_idx[TOPK_MAX_K];

    const uint32_t row = blockIdx.x;
    const uint32_t tid = threadIdx.x;
    const uint32_t lane = tid & 31u, warp = tid >> 5;
    const T *xr = x + (uint64_t)row * row_stride;

    // ---- 2. radix select: threshold key T and how many keys == T to take ----
    K prefix = 0, mask = 0;
    uint32_t kleft = k;
    for (int shift = KO::BITS - 8; shift >= 0; shift -= 8) {
        for (uint32_t b = tid; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        for (uint32_t c = tid; c < n; c += blockDim.x) {
            K key = KO::key(xr[c]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xFFu], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            // Invariant: the keys matching `prefix` number >= kleft, so some bin stops the walk.
            uint32_t acc = 0;
            for (int b = 255; b >= 0; --b) {
                uint32_t h = hist[b];
                if (acc + h >= kleft) {
                    s_prefix = prefix | ((K)b << shift);
                    s_kleft = kleft - acc;
                    break;
                }
                acc += h;
            }
        }
        __syncthreads();
        prefix = s_prefix;
        kleft = s_kleft;
        mask |= (K)0xFFu << shift;
        // The next pass's hist reset is ordered after these reads by its own __syncthreads
        // only for hist; s_prefix/s_kleft are rewritten by thread 0 after two more barriers.
    }
    const K thr = prefix;          // the k-th largest key
    const uint32_t need_eq = kleft;  // keys == thr to take (>= 1)
    const uint32_t n_gt = k - need_eq;

    // ---- 3. compaction in column order ----
    if (tid == 0) { s_base_gt = 0; s_base_eq = 0; }
    __syncthreads();
    const uint32_t lt_mask = (1u << lane) - 1u;
    for (uint32_t c0 = 0; c0 < n; c0 += blockDim.x) {
        const uint32_t c = c0 + tid;
        const bool valid = c < n;
        const K key = valid ? KO::key(xr[c]) : (K)0;
        const bool gt = valid && key > thr;
        const bool eq = valid && key == thr;
        const uint32_t b_gt = __ballot_sync(0xFFFFFFFFu, gt);
        const uint32_t b_eq = __ballot_sync(0xFFFFFFFFu, eq);
        if (lane == 0) { warp_gt[warp] = __popc(b_gt); warp_eq[warp] = __popc(b_eq); }
        __syncthreads();
        uint32_t off_gt = s_base_gt, off_eq = s_base_eq, tot_gt = 0, tot_eq = 0;
        for (uint32_t w = 0; w < blockDim.x / 32; ++w) {
            if (w < warp) { off_gt += warp_gt[w]; off_eq += warp_eq[w]; }
            tot_gt += warp_gt[w]; tot_eq += warp_eq[w];
        }
        off_gt += __popc(b_gt & lt_mask);
        off_eq += __popc(b_eq & lt_mask);
        if (gt) { cand_key[off_gt] = key; cand_idx[off_gt] = c; }           // off_gt < n_gt always
        if (eq && off_eq < need_eq) { cand_key[n_gt + off_eq] = key; cand_idx[n_gt + off_eq] = c; }
        __syncthreads();  // everyone has read s_base_* and warp_* of this tile
        if (tid == 0) { s_base_gt += tot_gt; s_base_eq += tot_eq; }
        __syncthreads();
    }

    // ---- 4. order the k candidates: key desc, then column asc ----
    T *ov = out_val + (uint64_t)row * k;
    uint32_t *oi = out_idx + (uint64_t)row * k;
    for (uint32_t i = tid; i < k; i += blockDim.x) {
        const K ki = cand_key[i];
        const uint32_t ci = cand_idx[i];
        uint32_t rank = 0;
        for (uint32_t j = 0; j < k; ++j) {
            const K kj = cand_key[j];
            rank += (kj > ki) || (kj == ki && cand_idx[j] < ci);
        }
        ov[rank] = xr[ci];  // the original value, bit-exact
        oi[rank] = ci;
    }
}

// x: [rows, row_stride] (only the first n columns of each row are read), out_*: [rows, k].
// Launch: grid (rows,1,1), block (TOPK_THREADS,1,1), no dynamic shared memory; 1 <= k <= min(n, TOPK_MAX_K).
extern "C" __global__ void __launch_bounds__(TOPK_THREADS)
topk_rows_f32(const float *x, uint32_t n, uint32_t k, uint64_t row_stride, float *out_val, uint32_t *out_idx) {
    topk_row<float>(x, n, k, row_stride, out_val, out_idx);
}

extern "C" __global__ void __launch_bounds__(TOPK_THREADS)
topk_rows_bf16(const __nv_bfloat16 *x, uint32_t n, uint32_t k, uint64_t row_stride, __nv_bfloat16 *out_val, uint32_t *out_idx) {
    topk_row<__nv_bfloat16>(x, n, k, row_stride, out_val, out_idx);
}
