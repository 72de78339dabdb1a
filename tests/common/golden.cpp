#include "golden.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace yiti::test {

GoldenCase load_golden(const std::string& dir, const std::string& model, const std::string& prompt) {
    const std::string base = dir + "/" + model + "." + prompt;
    std::ifstream js(base + ".json");
    if (!js) throw std::runtime_error("cannot open " + base + ".json");
    nlohmann::json j = nlohmann::json::parse(js);
    GoldenCase g;
    g.tokens = j.at("tokens").get<std::vector<int32_t>>();
    g.greedy = j.at("greedy").get<std::vector<int32_t>>();
    g.n_vocab = j.at("n_vocab").get<int64_t>();
    std::ifstream lf(base + ".logits.f32", std::ios::binary);
    if (!lf) throw std::runtime_error("cannot open " + base + ".logits.f32");
    g.logits.resize(g.tokens.size() * (size_t)g.n_vocab);
    lf.read((char*)g.logits.data(), (std::streamsize)(g.logits.size() * sizeof(float)));
    if ((size_t)lf.gcount() != g.logits.size() * sizeof(float))
        throw std::runtime_error(base + ".logits.f32 is shorter than tokens x n_vocab");
    return g;
}

RowMetrics compare_row(const float* ours, const float* ref, int64_t n) {
    double mo = 0, mr = 0;
    for (int64_t i = 0; i < n; ++i) mo += ours[i], mr += ref[i];
    mo /= n, mr /= n;
    double dot = 0, no = 0, nr = 0, diff2 = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double a = ours[i] - mo, b = ref[i] - mr;
        dot += a * b, no += a * a, nr += b * b;
        const double d = (double)ours[i] - ref[i];
        diff2 += d * d;
    }
    RowMetrics m;
    m.cosine = (no > 0 && nr > 0) ? dot / std::sqrt(no * nr) : (no == nr ? 1.0 : 0.0);
    const double std_ref = std::sqrt(nr / n);
    m.rms_ratio = std_ref > 0 ? std::sqrt(diff2 / n) / std_ref : std::sqrt(diff2 / n);
    return m;
}

}  // namespace yiti::test
