// The matrix product driver: quantizes activations once per (input, format), then hands tiles of
// weight rows x activation columns to the type's kernels on the thread pool. Several products can
// run as one job list (Q/K/V, gate/up, the experts of a MoE layer): one quantization step and one
// parallel region for all of them, instead of a pool synchronization per matrix.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"
#include "cpu/packed.h"

namespace yiti::cpu {

namespace {

constexpr int64_t k_col_tile = 64;  // activation columns per tile (their quantized rows stay in cache)

void matmul_exact(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tokens, float* y) {
    const int64_t n_in = w.ne[0], n_out = w.ne[1];
    const CpuKernels* k = cpu_kernels(w.type);
    if (!k) throw Error(strprintf("tensor '%s': type %s has no CPU kernels", w.name.c_str(), dtype_name(w.type)));
    const int64_t n_col_tiles = (n_tokens + k_col_tile - 1) / k_col_tile;
    const int64_t rt = std::clamp<int64_t>((n_out * n_col_tiles + 8 * pool.size() - 1) / (8 * pool.size()), 4, 64);
    const int64_t n_row_tiles = (n_out + rt - 1) / rt;
    pool.parallel_for(n_row_tiles * n_col_tiles, 1, [&](int64_t b, int64_t e) {
        std::vector<float> wrow((size_t)n_in);
        for (int64_t tile = b; tile < e; ++tile) {
            const int64_t r0 = (tile / n_col_tiles) * rt, c0 = (tile % n_col_tiles) * k_col_tile;
            const int64_t r1 = std::min(n_out, r0 + rt), c1 = std::min(n_tokens, c0 + k_col_tile);
            for (int64_t r = r0; r < r1; ++r) {
                k->to_float(w.row(r), wrow.data(), n_in);
                for (int64_t c = c0; c < c1; ++c) y[c * n_out + r] = dot_f32(wrow.data(), x + c * n_in, n_in);
            }
        }
    });
}

// How one job's activations are prepared.
struct ActFormat {
    void (*quantize)(const float*, void*, int64_t) = nullptr;  // null: F32 as is
    size_t (*bytes_fn)(int64_t) = nullptr;
    DType vdt = DType::F32;
    size_t row_bytes(int64_t n_in) const { return bytes_fn ? bytes_fn(n_in) : row_size(vdt, n_in); }
    bool operator==(const ActFormat& o) const { return quantize == o.quantize && bytes_fn == o.bytes_fn && vdt == o.vdt; }
};

struct Prepared {
    const float* x;
    int64_t n_in, n_tokens;  // rows of x
    ActFormat fmt;
    size_t ld;
    size_t offset;  // into the shared buffer
};

// From this many columns a packed product runs on AMX tiles (where the CPU has them).
constexpr int64_t k_amx_min_cols = 16;
// AMX tasks take whole column ranges of this size: the group's weight planes are built once per
// task. The task's activations are read again for each of its row groups; Q8_0's (2 bytes per
// element) then no longer stay in L2 at 512 columns: 256 for it. (Measured with a 1 MB cap on a
// task's activations, i.e. 256 columns for 2048-wide inputs and fewer for the 5632-wide down
// projection: tinyllama-Q8_0 pp512 median 253 -> 274 t/s, while tinyllama-Q4_K_M lost 7%.)
constexpr int64_t k_amx_col_tile = 512, k_amx_col_tile_q8_0 = 256;

struct JobPlan {
    const Tensor* w;
    const PackedKernels* pk;  // packed path
    bool amx;
    const CpuKernels* k;      // plain path
    const uint8_t* xq;
    size_t ld_x;
    int64_t n_in, n_out, n_tokens;
    float* y;
    int64_t row_unit;   // rows per task
    int64_t col_unit;   // columns per task
    int64_t n_row_tasks, n_col_tasks;
    int64_t first_task;
    // GLU pairs (matmul_glu_jobs): 1 = a gate whose tasks also compute the next plan (its up) on the
    // same tile and then apply silu(gate) * up there; 2 = that up (no tasks of its own);
    // 3 = a gate whose up could not share its tiles (silu applied after the run).
    int glu = 0;
    const uint8_t* wp;        // packed path: the weight's groups, from the view's first row
    size_t w_group;           // bytes per group
};

// Quantization buffer reused across calls by the thread that drives the products; 64-byte aligned
// (the AMX kernels load activation tiles from it).
struct ActBuffer {
    uint8_t* p = nullptr;
    size_t n = 0;
    uint8_t* data() { return p; }
    void reserve(size_t bytes) {
        if (bytes <= n) return;
        free(p);
        n = (bytes + 4095) / 4096 * 4096;
        p = (uint8_t*)aligned_alloc(64, n);
        if (!p) throw Error("matmul: out of memory for activations");
    }
    ~ActBuffer() { free(p); }
};
ActBuffer& act_buffer() {
    thread_local ActBuffer buf;
    return buf;
}

}  // namespace

struct MmStats {
    std::map<std::string, std::pair<double, double>> m;  // key -> (bytes, seconds)
    ~MmStats() {
        for (auto& [k, v] : m) fprintf(stderr, "%-40s %8.1f MB %8.3f s %6.1f GB/s\n", k.c_str(), v.first / 1e6, v.second, v.first / v.second / 1e9);
    }
};
static MmStats* mm_stats() {
    static MmStats s;
    static const bool on = getenv("YITI_MMSTATS") != nullptr;
    return on ? &s : nullptr;
}
static void matmul_jobs_impl(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact, bool glu);
static void matmul_jobs_timed(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact, bool glu) {
    MmStats* st = mm_stats();
    if (!st) return matmul_jobs_impl(pool, jobs, n_jobs, exact, glu);
    const auto t0 = std::chrono::steady_clock::now();
    matmul_jobs_impl(pool, jobs, n_jobs, exact, glu);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double bytes = 0;
    std::string key;
    for (size_t j = 0; j < n_jobs; ++j) {
        bytes += (double)jobs[j].w->row_bytes() * jobs[j].w->ne[1];
        if (j < 3) key += strprintf("%s%s[%lldx%lld]", j ? "+" : "", dtype_name(jobs[j].w->type), (long long)jobs[j].w->ne[0], (long long)jobs[j].w->ne[1]);
    }
    if (n_jobs > 3) key += strprintf("+%zu", n_jobs - 3);
    auto& e = st->m[key];
    e.first += bytes;
    e.second += sec;
}
void matmul_jobs(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact) {
    matmul_jobs_timed(pool, jobs, n_jobs, exact, false);
}
void matmul_glu_jobs(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact) {
    YITI_ASSERT(n_jobs % 2 == 0);
    matmul_jobs_timed(pool, jobs, n_jobs, exact, true);
}

namespace {
// Whether a GLU pair's gate and up run on shared tiles (each task: the gate's rows, the up's same
// rows, then silu on them) or as two products one after the other (silu after the run). Shared
// tiles keep a prompt pass's tile in cache for the silu; in decode they make each thread alternate
// between two weight streams, which ran 3.5% slower than the same bytes as two products (2 x 5632
// rows x 2048 Q4_K, 2 threads, 3 interleaved runs: 32.8-33.7 vs 34.1-34.8 GB/s).
bool glu_shares_tiles(int64_t n_tokens) { return n_tokens >= k_amx_min_cols; }

// gate[c][r] = silu(gate[c][r]) * up[c][r] for the tile's rows and columns.
void glu_tile(float* g, const float* u, size_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) silu_mul(g + c * ld + r0, u + c * ld + r0, r1 - r0);
}
}  // namespace

static void matmul_jobs_impl(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact, bool glu) {
    if (exact) {
        std::vector<float> xg;
        for (size_t j = 0; j < n_jobs; ++j) {
            const MatmulJob& job = jobs[j];
            const float* x = job.x;
            if (job.x_rows) {
                const int64_t n_in = job.w->ne[0];
                xg.resize((size_t)(job.n_tokens * n_in));
                for (int64_t c = 0; c < job.n_tokens; ++c) {
                    YITI_ASSERT(job.x_rows[c] >= 0 && job.x_rows[c] < job.x_n_rows);
                    memcpy(xg.data() + c * n_in, job.x + (int64_t)job.x_rows[c] * n_in, (size_t)n_in * sizeof(float));
                }
                x = xg.data();
            }
            matmul_exact(pool, *job.w, x, job.n_tokens, job.y);
        }
        if (glu)
            for (size_t j = 0; j + 1 < n_jobs; j += 2)
                glu_tile(jobs[j].y, jobs[j + 1].y, (size_t)jobs[j].w->ne[1], 0, jobs[j].w->ne[1], 0, jobs[j].n_tokens);
        return;
    }
    std::vector<JobPlan> plans;
    std::vector<Prepared> preps;
    std::vector<size_t> prep_of;
    std::vector<const int32_t*> gathers;
    plans.reserve(n_jobs);
    size_t buf_bytes = 0;
    for (size_t j = 0; j < n_jobs; ++j) {
        const MatmulJob& job = jobs[j];
        const Tensor& w = *job.w;
        YITI_ASSERT(w.ne[2] == 1 && w.ne[3] == 1);
        if (job.n_tokens <= 0) continue;
        const int64_t x_rows_total = job.x_rows ? job.x_n_rows : job.n_tokens;
        JobPlan p{};
        p.w = &w;
        p.n_in = w.ne[0];
        p.n_out = w.ne[1];
        p.n_tokens = job.n_tokens;
        p.y = job.y;
        ActFormat fmt;
        p.wp = packed_data(w);
        p.pk = p.wp ? packed_kernels(w.type) : nullptr;
        if (p.pk) p.w_group = packed_group_bytes(w);
        if (p.pk) {
            fmt.quantize = p.pk->quantize_act;
            fmt.bytes_fn = p.pk->act_bytes;
        } else {
            p.k = cpu_kernels(w.type);
            if (!p.k)
                throw Error(strprintf("tensor '%s': type %s has no CPU kernels", w.name.c_str(), dtype_name(w.type)));
            fmt.vdt = p.k->vec_dot_type;
            fmt.quantize = fmt.vdt == DType::F32 ? nullptr : p.k->from_float;
        }
        // Same input, same format: quantized once.
        size_t pi = preps.size();
        for (size_t q = 0; q < preps.size(); ++q)
            if (preps[q].x == job.x && preps[q].n_in == p.n_in && preps[q].n_tokens == x_rows_total && preps[q].fmt == fmt) {
                pi = q;
                break;
            }
        if (pi == preps.size()) {
            Prepared pr{job.x, p.n_in, x_rows_total, fmt, fmt.quantize ? fmt.row_bytes(p.n_in) : p.n_in * sizeof(float),
                        buf_bytes};
            if (fmt.quantize) buf_bytes += (pr.ld * (size_t)x_rows_total + 63) / 64 * 64;
            preps.push_back(pr);
        }
        prep_of.push_back(pi);
        gathers.push_back(job.x_rows);
        if (glu) p.glu = j % 2 == 0 ? 1 : 2;
        plans.push_back(p);
    }
    if (plans.empty()) return;
    // Jobs on row subsets get their (quantized) rows gathered into a buffer of their own.
    std::vector<size_t> gather_off(plans.size(), 0);
    std::vector<size_t> gather_same(plans.size(), SIZE_MAX);  // an earlier job with the same gathered rows
    for (size_t j = 0; j < plans.size(); ++j)
        if (gathers[j]) {
            if (j > 0 && gathers[j - 1] == gathers[j] && prep_of[j - 1] == prep_of[j] &&
                plans[j - 1].n_tokens == plans[j].n_tokens) {
                gather_same[j] = gather_same[j - 1] != SIZE_MAX ? gather_same[j - 1] : j - 1;
                continue;
            }
            gather_off[j] = buf_bytes;
            buf_bytes += (preps[prep_of[j]].ld * (size_t)plans[j].n_tokens + 63) / 64 * 64;
        }

    // Quantize the activations: inline when small (decode), else on the pool.
    ActBuffer& buf = act_buffer();
    buf.reserve(buf_bytes);
    int64_t q_rows = 0, q_elems = 0;
    for (auto& pr : preps)
        if (pr.fmt.quantize) q_rows += pr.n_tokens, q_elems += pr.n_tokens * pr.n_in;
    auto quantize_row = [&](int64_t it) {
        for (auto& pr : preps) {
            if (!pr.fmt.quantize) continue;
            if (it < pr.n_tokens) {
                pr.fmt.quantize(pr.x + it * pr.n_in, buf.data() + pr.offset + (size_t)it * pr.ld, pr.n_in);
                return;
            }
            it -= pr.n_tokens;
        }
    };
    if (q_rows > 0) {
        if (q_elems <= 32768 || pool.size() == 1) {
            for (int64_t it = 0; it < q_rows; ++it) quantize_row(it);
        } else {
            pool.parallel_for(q_rows, 1, [&](int64_t b, int64_t e) {
                for (int64_t it = b; it < e; ++it) quantize_row(it);
            });
        }
    }
    for (size_t j = 0; j < plans.size(); ++j) {
        const Prepared& pr = preps[prep_of[j]];
        plans[j].xq = pr.fmt.quantize ? buf.data() + pr.offset : (const uint8_t*)pr.x;
        plans[j].ld_x = pr.ld;
        if (gathers[j] && gather_same[j] != SIZE_MAX) {
            plans[j].xq = plans[gather_same[j]].xq;
        } else if (gathers[j]) {
            uint8_t* dst = buf.data() + gather_off[j];
            for (int64_t c = 0; c < plans[j].n_tokens; ++c) {
                const int32_t r = gathers[j][c];
                YITI_ASSERT(r >= 0 && r < pr.n_tokens);
                memcpy(dst + (size_t)c * pr.ld, plans[j].xq + (size_t)r * pr.ld, pr.ld);
            }
            plans[j].xq = dst;
        }
    }

    // Tasks: about 16 per thread, none smaller than ~256K multiply-adds.
    double total = 0;
    for (auto& p : plans) total += (double)p.n_out * (double)p.n_tokens * (double)p.n_in;
    // YITI_TASKS_PER_THREAD: an experiment switch (decode measured within noise from 2 to 16 before
    // packed decode moved to one-group tasks; it now sizes prompt passes and unpacked weights' tasks).
    static const double k_tpt = getenv("YITI_TASKS_PER_THREAD") ? std::max(1.0, atof(getenv("YITI_TASKS_PER_THREAD"))) : 16.0;
    const double per_task = std::max(total / (k_tpt * pool.size()), 262144.0);
    int64_t n_tasks = 0;
    for (auto& p : plans) {
        const int64_t unit = p.pk ? kPackRows : 4;
        p.amx = p.pk && p.pk->gemm_amx && p.n_tokens >= k_amx_min_cols;
        const int64_t amx_cols = p.w->type == DType::Q8_0 ? k_amx_col_tile_q8_0 : k_amx_col_tile;
        p.col_unit = std::min<int64_t>(p.n_tokens, p.amx ? amx_cols : k_col_tile);
        int64_t rows = unit;
        // Decode over packed weights: one group per task. The pool hands a thread a quarter of what
        // is left of its share per claim, so this costs few claims, and a job's tail is one group
        // (2048-row products, 2 threads: the gap between the threads' last tasks 6.4 -> 0.9 us).
        if (!p.pk || p.amx) {
            rows = (int64_t)(per_task / ((double)p.col_unit * (double)p.n_in));
            rows = std::clamp<int64_t>((rows + unit - 1) / unit * unit, unit, (p.n_out + unit - 1) / unit * unit);
            if (!p.pk) rows = std::min<int64_t>(rows, 64);
            // Few columns over unpacked weights (a MoE router's F32 matrix in decode) stream their
            // weights: tasks of ~32 KB of them, not of a minimum of multiply-adds, so that every
            // thread streams its share (one task had one thread read dsmoe's 2048 x 64 F32 router alone).
            if (!p.pk && p.n_tokens < k_amx_min_cols)
                rows = std::clamp<int64_t>((int64_t)(32768 / p.w->row_bytes()) / unit * unit, unit, rows);
        }
        p.row_unit = rows;
        p.n_row_tasks = (p.n_out + rows - 1) / rows;
        p.n_col_tasks = (p.n_tokens + p.col_unit - 1) / p.col_unit;
    }
    for (size_t j = 0; j < plans.size(); ++j) {
        JobPlan& p = plans[j];
        if (p.glu == 1) {
            YITI_ASSERT(j + 1 < plans.size() && plans[j + 1].glu == 2);
            const JobPlan& u = plans[j + 1];
            YITI_ASSERT(u.n_out == p.n_out && u.n_tokens == p.n_tokens);
            // Shared tiles need the same tiling (same kind of kernel, same units); few columns (decode)
            // stream better as two separate products (see glu_shares_tiles).
            if (!glu_shares_tiles(p.n_tokens) || u.pk != p.pk || u.k != p.k || u.amx != p.amx || u.row_unit != p.row_unit ||
                u.col_unit != p.col_unit) {
                p.glu = 3;
                plans[j + 1].glu = 0;
            }
        }
        p.first_task = n_tasks;
        if (p.glu != 2) n_tasks += p.n_row_tasks * p.n_col_tasks;
    }

    auto run_tile = [&](const JobPlan& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        const uint8_t* xb = p.xq + (size_t)c0 * p.ld_x;
        if (p.pk) {
            const uint8_t* wp = p.wp;
            for (int64_t r = r0; r < r1; r += kPackRows) {
                const int nr = (int)std::min<int64_t>(kPackRows, r1 - r);
                (p.amx ? p.pk->gemm_amx : p.pk->gemm)(p.n_in, p.y + c0 * p.n_out + r, (size_t)p.n_out,
                                                      wp + (size_t)(r / kPackRows) * p.w_group, nr, xb,
                                                      p.ld_x, (int)(c1 - c0));
            }
        } else if (p.k->gemm) {
            const size_t ld_w = p.w->row_bytes();
            p.k->gemm(p.n_in, p.y + c0 * p.n_out + r0, (size_t)p.n_out, (const uint8_t*)p.w->data + r0 * ld_w, ld_w,
                      (int)(r1 - r0), xb, p.ld_x, (int)(c1 - c0));
        } else {
            const size_t ld_w = p.w->row_bytes();
            for (int64_t c = c0; c < c1; ++c)
                for (int64_t r = r0; r < r1; ++r)
                    p.k->vec_dot(p.n_in, p.y + c * p.n_out + r, (const uint8_t*)p.w->data + r * ld_w,
                                 p.xq + (size_t)c * p.ld_x);
        }
    };
    // Runs tasks [task, end) of one plan (from `task`, as many as are in its plan and before `end`);
    // returns the next task. Whole-column tasks in a row are one tile (one call per kernel).
    auto run_span = [&](int64_t task, int64_t end) -> int64_t {
        // The plan of the task: the last with first_task <= task (ups of fused pairs have none).
        size_t j = 0;
        while (j + 1 < plans.size() && plans[j + 1].first_task <= task) ++j;
        while (plans[j].glu == 2) --j;
        const JobPlan& p = plans[j];
        const int64_t t = task - p.first_task;
        int64_t r0, r1, c0, c1, next;
        if (p.n_col_tasks == 1) {
            next = std::min(end, p.first_task + p.n_row_tasks);
            r0 = t * p.row_unit;
            r1 = std::min(p.n_out, (next - p.first_task) * p.row_unit);
            c0 = 0;
            c1 = p.n_tokens;
        } else {
            // Column tiles vary fastest: neighbouring tasks share weight rows.
            next = task + 1;
            r0 = (t / p.n_col_tasks) * p.row_unit;
            c0 = (t % p.n_col_tasks) * p.col_unit;
            r1 = std::min(p.n_out, r0 + p.row_unit);
            c1 = std::min(p.n_tokens, c0 + p.col_unit);
        }
        run_tile(p, r0, r1, c0, c1);
        if (p.glu == 1) {
            const JobPlan& u = plans[j + 1];
            run_tile(u, r0, r1, c0, c1);
            glu_tile(p.y, u.y, (size_t)p.n_out, r0, r1, c0, c1);
        }
        return next;
    };
    pool.run_ranges(n_tasks, [&](int64_t b, int64_t e) {
        while (b < e) b = run_span(b, e);
    });
    // Silu for the pairs that did not share tiles: inline when small (decode), else over the pool.
    for (size_t j = 0; j + 1 < plans.size(); ++j) {
        const JobPlan& p = plans[j];
        if (p.glu != 3) continue;
        auto rows = [&](int64_t r0, int64_t r1) { glu_tile(p.y, plans[j + 1].y, (size_t)p.n_out, r0, r1, 0, p.n_tokens); };
        if (p.n_out * p.n_tokens <= 16384) rows(0, p.n_out);
        else pool.parallel_for(p.n_out, std::max<int64_t>(16, 4096 / p.n_tokens), rows);
    }
}

void prefetch_hint(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool glu) {
    // A job list's tasks go to the threads in contiguous shares, in job order (a GLU pair's gate and
    // up together, tile by tile, where they share tiles): thread r's share starts at about fraction
    // r / n of the list's bytes.
    constexpr size_t kCap = 256 << 10;  // per thread: well inside its L2
    // YITI_NO_HINT=1 turns the hints off, to measure them (tg128, 4 alternating runs each:
    // tinyllama-Q8_0 22.0 -> 22.7 t/s, tinyllama-Q4_K_M 36.1 -> 37.2 t/s with them).
    static const bool off = getenv("YITI_NO_HINT") != nullptr;
    if (off) return;
    const int nt = pool.size();
    struct Unit {
        const uint8_t* p[2];
        size_t bytes[2];
        int n;
        size_t total() const { return bytes[0] + (n > 1 ? bytes[1] : 0); }
    };
    auto span = [](const Tensor& w, const uint8_t** p, size_t* bytes) {
        const uint8_t* wp = packed_data(w);
        *p = wp ? wp : (const uint8_t*)w.data;
        *bytes = wp ? (size_t)((w.ne[1] + kPackRows - 1) / kPackRows) * packed_group_bytes(w) : w.row_bytes() * (size_t)w.ne[1];
    };
    std::vector<Unit> units;
    size_t total = 0;
    for (size_t j = 0; j < n_jobs; ++j) {
        if (jobs[j].n_tokens <= 0) continue;
        Unit u{};
        u.n = glu && j + 1 < n_jobs && glu_shares_tiles(jobs[j].n_tokens) ? 2 : 1;
        for (int h = 0; h < u.n; ++h) span(*jobs[j + (size_t)h].w, &u.p[h], &u.bytes[h]);
        if (u.n == 2) ++j;
        total += u.total();
        units.push_back(u);
    }
    std::vector<ThreadPool::HintRange> ranges((size_t)nt * ThreadPool::kHintRanges);
    for (int r = 0; r < nt; ++r) {
        ThreadPool::HintRange* out = &ranges[(size_t)r * ThreadPool::kHintRanges];
        int nr = 0;
        size_t pos = total * (size_t)r / (size_t)nt, want = std::min(kCap, total / (size_t)nt);
        for (const Unit& u : units) {
            if (want == 0 || nr == ThreadPool::kHintRanges) break;
            if (pos >= u.total()) {
                pos -= u.total();
                continue;
            }
            // Position pos of the unit: the same fraction into each of its matrices.
            const double f = (double)pos / (double)u.total();
            const size_t take = std::min(want, u.total() - pos);
            for (int h = 0; h < u.n && nr < ThreadPool::kHintRanges; ++h) {
                const size_t off = (size_t)(f * (double)u.bytes[h]) / 64 * 64;
                const size_t len = std::min(u.bytes[h] - off, take * u.bytes[h] / u.total());
                out[nr++] = {u.p[h] + off, len};
            }
            want -= take;
            pos = 0;
        }
    }
    pool.set_prefetch_hint(ranges.data());
}

void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tokens, float* y, bool exact) {
    const MatmulJob job{&w, x, n_tokens, y};
    matmul_jobs(pool, &job, 1, exact);
}

}  // namespace yiti::cpu
