// Comparison of logits with the golden data in ../shared/golden (metrics as ../shared/README.md
// defines them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace yiti::test {

struct GoldenCase {
    std::vector<int32_t> tokens;   // the prompt, BOS first
    std::vector<int32_t> greedy;   // the next greedy tokens
    int64_t n_vocab = 0;
    std::vector<float> logits;     // [tokens.size()][n_vocab]
};

// Reads <dir>/<model>.<prompt>.json and .logits.f32; throws on missing or inconsistent files.
GoldenCase load_golden(const std::string& dir, const std::string& model, const std::string& prompt);

struct RowMetrics {
    double cosine;     // cosine similarity of the mean-centred rows
    double rms_ratio;  // RMS(ours - ref) / std(ref)
};
RowMetrics compare_row(const float* ours, const float* ref, int64_t n);

}  // namespace yiti::test
