// Grammar-constrained decoding cost: the time of one vocabulary mask per generated token for a
// representative JSON schema (nested object, arrays, enums, a format, a pattern, a $ref), on a
// real vocabulary, averaged over generated valid documents tokenized by the model's tokenizer.
//
//   build/grammar_bench [model.gguf (default models/SmolLM2-135M-Instruct.Q4_1.gguf)] [docs (default 20)]
//
// Prints: grammar size, the cold pass (mask cache filled on first use), the warm per-step mask
// time (cached), the per-step time of walking the whole trie without the cache, of checking every
// token (brute force), and of advancing the state by a token.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "tokenizer/tokenizer.h"

using namespace yiti;
using namespace yiti::sample;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

static const char* kSchema = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string", "format": "email"},
    "role": {"enum": ["admin", "editor", "viewer"]},
    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"},
        "country": {"enum": ["FR", "DE", "US", "CN", "JP"]}
      },
      "required": ["street", "city"]
    },
    "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 4},
    "active": {"type": "boolean"},
    "manager": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]}
  },
  "required": ["name", "age", "role", "tags", "active"],
  "additionalProperties": false,
  "$defs": {
    "person": {
      "type": "object",
      "properties": {"name": {"type": "string"}, "title": {"type": "string"}},
      "required": ["name"]
    }
  }
})";

static ojson make_doc(std::mt19937& rng) {
    auto pick = [&](const std::vector<std::string>& v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; };
    auto uni = [&](int a, int b) { return std::uniform_int_distribution<int>(a, b)(rng); };
    const std::vector<std::string> first = {"Alice", "Bob", "Chen Wei", "Dana", "Émile", "Farah", "Goro"};
    const std::vector<std::string> last = {"Martin", "Schmidt", "Li", "O'Brien", "Tanaka", "Nguyen"};
    const std::vector<std::string> words = {"backend", "ml", "on-call", "rust", "kubernetes", "design", "team lead", "remote"};
    const std::vector<std::string> streets = {"12 Rue de Rivoli", "221B Baker Street", "Hauptstraße 5", "1-2-3 Shibuya"};
    const std::vector<std::string> cities = {"Paris", "London", "Berlin", "Tokyo", "San Francisco"};
    ojson d = ojson::object();
    const std::string name = pick(first) + " " + pick(last);
    d["name"] = name;
    d["age"] = uni(18, 90);
    if (uni(0, 1)) d["email"] = "user" + std::to_string(uni(1, 999)) + "@example.com";
    d["role"] = pick({"admin", "editor", "viewer"});
    ojson tags = ojson::array();
    for (int i = uni(1, 5); i > 0; --i) tags.push_back(pick(words));
    d["tags"] = tags;
    if (uni(0, 2)) {
        ojson a = ojson::object();
        a["street"] = pick(streets);
        a["city"] = pick(cities);
        if (uni(0, 1)) a["country"] = pick({"FR", "DE", "US", "CN", "JP"});
        d["address"] = a;
    }
    if (uni(0, 1)) {
        ojson s = ojson::array();
        for (int i = uni(0, 4); i > 0; --i) s.push_back(uni(0, 1000) / 10.0);
        d["scores"] = s;
    }
    d["active"] = uni(0, 1) == 1;
    if (uni(0, 1)) {
        ojson m = ojson::object();
        m["name"] = pick(first);
        if (uni(0, 1)) m["title"] = "Director of " + pick(words);
        d["manager"] = m;
    } else {
        d["manager"] = nullptr;
    }
    return d;
}

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const int n_docs = argc > 2 ? std::atoi(argv[2]) : 20;
    auto f = gguf::File::open(path);
    auto tok = Tokenizer::from_gguf(*f);
    auto t0 = Clock::now();
    auto vocab = TokenVocab::from_tokenizer(*tok);
    const double t_vocab = std::chrono::duration<double>(Clock::now() - t0).count();
    t0 = Clock::now();
    auto g = json_schema_grammar(ojson::parse(kSchema));
    const double t_compile = std::chrono::duration<double>(Clock::now() - t0).count();
    printf("vocabulary: %d tokens, %zu trie nodes, built in %.1f ms\n", vocab->size(), vocab->n_trie_nodes(), t_vocab * 1e3);
    printf("grammar: %zu rules, %zu elements, compiled in %.2f ms\n", g->n_rules(), g->n_elements(), t_compile * 1e3);

    std::mt19937 rng(42);
    std::vector<std::vector<int32_t>> docs;
    size_t n_tokens = 0;
    for (int i = 0; i < n_docs; ++i) {
        const ojson d = make_doc(rng);
        const std::string text = (i % 2) ? d.dump(2) : d.dump();  // pretty and compact
        docs.push_back(tok->encode(text, false, false));
        n_tokens += docs.back().size() + 1;
    }

    auto cache = std::make_shared<MaskCache>(g, vocab);
    TokenMask mask;
    size_t allowed_sum = 0;
    double max_step = 0;
    auto run_pass = [&](int which, double& mask_s, double& adv_s, size_t& steps) {
        mask_s = adv_s = 0;
        max_step = 0;
        steps = 0;
        allowed_sum = 0;
        for (const auto& ids : docs) {
            Matcher m(cache);
            GrammarState s = m.initial();
            for (size_t i = 0; i <= ids.size(); ++i) {
                auto a = Clock::now();
                if (which == 0) m.fill_mask(s, mask);
                else if (which == 1) m.fill_mask_trie(s, mask);
                else m.fill_mask_bruteforce(s, mask);
                auto b = Clock::now();
                mask_s += std::chrono::duration<double>(b - a).count();
                max_step = std::max(max_step, std::chrono::duration<double>(b - a).count());
                allowed_sum += mask.count();
                ++steps;
                if (i == ids.size()) {
                    if (!m.can_end(s)) {
                        fprintf(stderr, "error: document not complete\n");
                        exit(1);
                    }
                    break;
                }
                if (!mask.test(ids[i])) {
                    fprintf(stderr, "error: token %d '%s' masked\n", ids[i], vocab->piece(ids[i]).c_str());
                    exit(1);
                }
                a = Clock::now();
                m.advance_token(s, ids[i]);
                adv_s += std::chrono::duration<double>(Clock::now() - a).count();
            }
        }
    };
    double mask_s, adv_s;
    size_t steps;
    run_pass(0, mask_s, adv_s, steps);
    printf("documents: %d, %zu mask steps (tokens + end)\n", n_docs, steps);
    printf("cold pass (cache filled on first use): %.1f us/step mask, slowest step %.2f ms; cache: %zu positions, %.1f ms to fill\n",
           mask_s / double(steps) * 1e6, max_step * 1e3, cache->n_entries(), cache->build_seconds() * 1e3);
    double best = 1e9, adv_best = 1e9, max_best = 1e9;
    for (int r = 0; r < 5; ++r) {
        run_pass(0, mask_s, adv_s, steps);
        max_best = std::min(max_best, max_step);
        best = std::min(best, mask_s / double(steps));
        adv_best = std::min(adv_best, adv_s / double(steps));
    }
    printf("warm: %.2f us/step mask (cached; slowest step, best of 5 passes: %.1f us), %.2f us/step advance_token; mean allowed tokens %.0f\n",
           best * 1e6, max_best * 1e6, adv_best * 1e6, double(allowed_sum) / double(steps));
    run_pass(1, mask_s, adv_s, steps);
    printf("whole trie walk without the cache: %.1f us/step\n", mask_s / double(steps) * 1e6);
    docs.resize(std::min<size_t>(docs.size(), 2));
    run_pass(2, mask_s, adv_s, steps);
    printf("brute force (every token checked): %.1f us/step\n", mask_s / double(steps) * 1e6);
    return 0;
}
