// Tokenizer: loading from GGUF metadata, special tokens, encode/decode, streaming decoder.
// The behaviour follows llama.cpp (src/llama-vocab.cpp) so that ids match exactly.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unicode.h"

namespace yiti {

using namespace tok;

namespace {

const char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

uint32_t attr_from_type(int64_t t) {
    switch (t) {
        case 1: return ATTR_NORMAL;
        case 2: return ATTR_UNKNOWN;
        case 3: return ATTR_CONTROL;
        case 4: return ATTR_USER_DEFINED;
        case 5: return ATTR_UNUSED;
        case 6: return ATTR_BYTE;
        default: return ATTR_UNDEFINED;
    }
}

TokenType type_from_attr(uint32_t a) {
    if (a & ATTR_NORMAL) return TokenType::NORMAL;
    if (a & ATTR_UNKNOWN) return TokenType::UNKNOWN;
    if (a & ATTR_CONTROL) return TokenType::CONTROL;
    if (a & ATTR_USER_DEFINED) return TokenType::USER_DEFINED;
    if (a & ATTR_UNUSED) return TokenType::UNUSED;
    if (a & ATTR_BYTE) return TokenType::BYTE;
    return TokenType::UNDEFINED;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    size_t pos = 0;
    while (true) {
        const size_t hit = s.find(from, pos);
        if (hit == std::string_view::npos) break;
        out.append(s.data() + pos, hit - pos);
        out.append(to);
        pos = hit + from.size();
    }
    out.append(s.data() + pos, s.size() - pos);
    return out;
}

bool c_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// llama.cpp's clean-up of tokenization spaces (three passes, in this order).
std::string clean_up_spaces(std::string s) {
    if (s.empty()) return s;
    // 1: " ?", " !", " .", " ," lose the space
    std::string a;
    a.reserve(s.size());
    a.push_back(s[0]);
    for (size_t i = 1; i < s.size(); ++i) {
        const char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
        a.push_back(x);
    }
    // 2: a lone apostrophe between spaces loses both spaces
    std::string b;
    b.reserve(a.size());
    b.push_back(a[0]);
    for (size_t i = 1; i < a.size(); ++i) {
        const char x = a[i];
        if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
            b.pop_back();
            a[++i] = '\0';  // the space after it is dropped (and no longer counts as a space)
        }
        b.push_back(x);
    }
    // 3: " 's", " 'm", " 're", " 've" lose the space
    std::string c;
    c.reserve(b.size());
    c.push_back(b[0]);
    for (size_t i = 1; i < b.size(); ++i) {
        const char x = b[i];
        if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
            const char x1 = b[i + 1];
            if (x1 == 's' || x1 == 'm') {
                c.pop_back();
            } else if (x1 != 't' && x1 != 'd' && i + 2 < b.size()) {
                const char x2 = b[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) c.pop_back();
            }
        }
        c.push_back(x);
    }
    return c;
}

struct Fragment {
    int32_t token;  // >= 0: a special token; -1: raw text [off, off + len)
    size_t off;
    size_t len;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// indexes

namespace tok {

size_t TokenIndex::build(const std::vector<std::string>& texts) {
    texts_ = &texts;
    size_t cap = 16;
    while (cap < texts.size() * 2) cap <<= 1;
    slots_.assign(cap, 0);
    mask_ = cap - 1;
    size_t dup = 0;
    for (size_t id = 0; id < texts.size(); ++id) {
        const uint64_t h = hash_bytes(texts[id]);
        const uint32_t tag = uint32_t(h >> 32);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            uint64_t& e = slots_[i];
            if (e == 0) {
                e = (uint64_t(tag) << 32) | uint64_t(id + 1);
                break;
            }
            if (uint32_t(e >> 32) == tag && texts[uint32_t(e) - 1] == texts[id]) {
                e = (uint64_t(tag) << 32) | uint64_t(id + 1);  // the later id wins
                ++dup;
                break;
            }
        }
    }
    return dup;
}

void PairIndex::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{kEmpty, -1});
    mask_ = cap - 1;
    count_ = 0;
}

void PairIndex::insert(uint64_t k, int32_t value) {
    if (slots_.empty() || (count_ + 1) * 2 > slots_.size()) {
        std::vector<Entry> old = std::move(slots_);
        reserve(std::max<size_t>(16, old.size()));
        for (const Entry& e : old)
            if (e.key != kEmpty) insert(e.key, e.value);
    }
    for (size_t i = slot_of(k);; i = (i + 1) & mask_) {
        Entry& e = slots_[i];
        if (e.key == k) return;  // the first insertion keeps its value
        if (e.key == kEmpty) {
            e = Entry{k, value};
            ++count_;
            return;
        }
    }
}

}  // namespace tok

// ---------------------------------------------------------------------------------------------
// loading

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& f) {
    std::unique_ptr<Tokenizer> tk(new Tokenizer());
    Impl& m = *tk->impl_;
    auto warn = [&](const std::string& msg) {
        m.warnings.push_back(msg);
        fprintf(stderr, "yiti: tokenizer: warning: %s\n", msg.c_str());
    };

    // --- model and its defaults
    const std::optional<std::string> model = f.get_str("tokenizer.ggml.model");
    if (!model) throw Error("tokenizer: " + f.path() + ": no tokenizer.ggml.model in the metadata");
    m.model = *model;
    if (m.model == "llama") {
        m.type = VocabType::SPM;
        m.bos = 1;
        m.eos = 2;
        m.unk = 0;
        m.add_space_prefix = true;
        m.add_bos = true;
    } else if (m.model == "gpt2") {
        m.type = VocabType::BPE;
        m.bos = 11;
        m.eos = 11;
        m.clean_spaces = true;
    } else if (m.model == "bert") {
        m.type = VocabType::WPM;
        m.bos = 101;
        m.unk = 100;
        m.sep = 102;
        m.pad = 0;
        m.mask = 103;
        m.clean_spaces = true;
        m.add_bos = true;
    } else if (m.model == "no_vocab" || m.model == "none") {
        throw Error("tokenizer: " + f.path() + ": the model has no vocabulary (tokenizer.ggml.model = '" + m.model +
                    "')");
    } else {
        throw Error("tokenizer: " + f.path() + ": unsupported tokenizer.ggml.model '" + m.model +
                    "' (supported: llama, gpt2, bert)");
    }

    const PreConfig* pre_cfg = nullptr;
    if (m.type == VocabType::BPE) {
        const std::optional<std::string> pre = f.get_str("tokenizer.ggml.pre");
        if (!pre || pre->empty()) {
            warn("no tokenizer.ggml.pre; using the 'default' pre-tokenizer (tokenization may differ from the "
                 "original model)");
        } else {
            pre_cfg = find_pre_config(*pre);
            if (!pre_cfg) warn("unknown tokenizer.ggml.pre '" + *pre + "'; using the 'default' pre-tokenizer");
        }
        if (!pre_cfg) pre_cfg = &default_pre_config();
        m.pre = pre_cfg->name;
        m.clean_spaces = pre_cfg->clean_spaces;
        m.ignore_merges = pre_cfg->ignore_merges;
        m.add_bos = pre_cfg->add_bos;
        if (pre_cfg->no_bos) m.bos = -1;
    }
    if (auto v = f.get_bool("tokenizer.ggml.add_space_prefix")) m.add_space_prefix = *v;

    // --- the vocabulary
    const gguf::Value* toks = f.get_array("tokenizer.ggml.tokens", gguf::ValueType::STRING);
    if (!toks) throw Error("tokenizer: " + f.path() + ": no tokenizer.ggml.tokens in the metadata");
    const size_t n = toks->array_str.size();
    if (n == 0) throw Error("tokenizer: " + f.path() + ": tokenizer.ggml.tokens is empty");
    if (n > size_t(INT32_MAX)) throw Error("tokenizer: " + f.path() + ": too many tokens");
    const gguf::Value* scores = f.get_array("tokenizer.ggml.scores", gguf::ValueType::FLOAT32);
    if (scores && scores->array_len != n)
        throw Error(strprintf("tokenizer: %s: tokenizer.ggml.scores has %llu entries for %zu tokens", f.path().c_str(),
                              (unsigned long long)scores->array_len, n));
    const gguf::Value* types = f.get_array("tokenizer.ggml.token_type", gguf::ValueType::INT32);
    if (types && types->array_len != n)
        throw Error(strprintf("tokenizer: %s: tokenizer.ggml.token_type has %llu entries for %zu tokens",
                              f.path().c_str(), (unsigned long long)types->array_len, n));

    m.text.resize(n);
    m.score.assign(n, 0.0f);
    m.attr.assign(n, ATTR_NORMAL);
    size_t n_empty = 0;
    for (size_t i = 0; i < n; ++i) {
        std::string& word = m.text[i];
        word = toks->array_str[i];
        if (word.empty()) {
            ++n_empty;
            word = "[EMPTY_" + std::to_string(i) + "]";
        }
        m.max_token_len = std::max(m.max_token_len, word.size());
        if (scores) m.score[i] = float(scores->array_number(i));
        if (types) m.attr[i] = attr_from_type(types->array_int(i));
    }
    const size_t n_dup = m.index.build(m.text);
    if (n_empty) warn(strprintf("%zu empty token(s) renamed to [EMPTY_<id>]", n_empty));
    if (n_dup) warn(strprintf("%zu duplicate token text(s); the last id wins when encoding", n_dup));

    // --- merges (BPE)
    if (m.type == VocabType::BPE) {
        const gguf::Value* merges = f.get_array("tokenizer.ggml.merges", gguf::ValueType::STRING);
        if (!merges) throw Error("tokenizer: " + f.path() + ": gpt2 tokenizer without tokenizer.ggml.merges");
        const std::vector<std::string>& list = merges->array_str;
        m.ranks.reserve(list.size());
        size_t n_bad = 0, n_unknown = 0;
        for (size_t i = 0; i < list.size(); ++i) {
            const std::string_view w = list[i];
            const size_t sp = w.size() > 1 ? w.find(' ', 1) : std::string_view::npos;
            if (sp == std::string_view::npos) {
                ++n_bad;
                continue;
            }
            const std::string_view a = w.substr(0, sp), b = w.substr(sp + 1);
            const int32_t ia = m.lookup(a), ib = m.lookup(b);
            if (ia >= 0 && ib >= 0) {
                m.ranks.insert(PairIndex::key(ia, ib), int32_t(i));  // the first occurrence keeps its rank
            } else {
                ++n_unknown;
                const std::string& sa = m.odd_merge_text.emplace_back(a);
                const std::string& sb = m.odd_merge_text.emplace_back(b);
                m.odd_ranks.emplace(SvPair(sa, sb), int32_t(i));
            }
        }
        if (n_bad) warn(strprintf("%zu malformed merge(s) (no space separator) ignored", n_bad));
        if (n_unknown)
            warn(strprintf("%zu merge(s) join text that is not in the vocabulary (kept, matched by text)",
                           n_unknown));
        m.pretok = std::make_unique<PreTokenizer>(*pre_cfg);
    }

    // --- special token ids
    struct Key {
        const char* key;
        int32_t* id;
    };
    const Key keys[] = {
        {"tokenizer.ggml.bos_token_id", &m.bos},         {"tokenizer.ggml.eos_token_id", &m.eos},
        {"tokenizer.ggml.eot_token_id", &m.eot},         {"tokenizer.ggml.eom_token_id", &m.eom},
        {"tokenizer.ggml.unknown_token_id", &m.unk},     {"tokenizer.ggml.seperator_token_id", &m.sep},
        {"tokenizer.ggml.padding_token_id", &m.pad},     {"tokenizer.ggml.mask_token_id", &m.mask},
        {"tokenizer.ggml.fim_pre_token_id", &m.fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &m.fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &m.fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &m.fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &m.fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &m.fim_sep},
        {"tokenizer.ggml.prefix_token_id", &m.fim_pre},  {"tokenizer.ggml.suffix_token_id", &m.fim_suf},
        {"tokenizer.ggml.middle_token_id", &m.fim_mid},
    };
    for (const Key& k : keys) {
        std::optional<int64_t> v;
        try {
            v = f.get_int(k.key);
        } catch (const Error&) {
            warn(std::string(k.key) + " is not an integer; ignored");
            continue;
        }
        if (!v) continue;
        if (*v == -1 || *v == int64_t(UINT32_MAX)) continue;  // "none": keep the default, as llama.cpp does
        if (*v < 0 || *v >= int64_t(n)) {
            warn(strprintf("%s = %lld is not a token id; keeping %d", k.key, (long long)*v, *k.id));
            continue;
        }
        *k.id = int32_t(*v);
    }
    for (int32_t* id : {&m.bos, &m.eos, &m.unk, &m.sep, &m.pad, &m.mask}) {
        if (*id >= int32_t(n)) *id = -1;  // a default that this small vocabulary does not have
    }
    if (auto v = f.get_bool("tokenizer.ggml.add_bos_token")) m.add_bos = *v;
    if (auto v = f.get_bool("tokenizer.ggml.add_eos_token")) m.add_eos = *v;

    // --- tokens recognised by their text (llama.cpp does the same; it also makes them CONTROL)
    auto promote = [&](int32_t id) {
        if (!(m.attr[size_t(id)] & ATTR_CONTROL)) m.attr[size_t(id)] = ATTR_CONTROL;
    };
    auto find_first = [&](std::initializer_list<const char*> names) -> int32_t {
        for (const char* s : names) {  // in order of preference
            const int32_t id = m.lookup(s);
            if (id >= 0) return id;
        }
        return -1;
    };
    auto detect = [&](int32_t& slot, std::initializer_list<const char*> names) {
        if (slot >= 0) return;
        const int32_t id = find_first(names);
        if (id >= 0) {
            slot = id;
            promote(id);
        }
    };
    detect(m.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
                   "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"});
    detect(m.eom, {"<|eom_id|>"});
    detect(m.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>"});
    detect(m.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>"});
    detect(m.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>"});
    detect(m.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<PAD>"});
    detect(m.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"});
    detect(m.fim_sep, {"<|file_sep|>"});

    // --- end-of-generation set
    m.eog_flag.assign(n, 0);
    auto add_eog = [&](int32_t id) {
        if (id >= 0 && id < int32_t(n)) m.eog_flag[size_t(id)] = 1;
    };
    add_eog(m.fim_pad);
    add_eog(m.fim_rep);
    add_eog(m.fim_sep);
    for (const char* s : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                          "<EOT>"}) {
        const int32_t id = m.lookup(s);
        if (id >= 0) {
            add_eog(id);
            promote(id);
        }
    }
    add_eog(m.eos);
    add_eog(m.eot);
    add_eog(m.eom);
    for (size_t i = 0; i < n; ++i)
        if (m.eog_flag[i]) m.eog.push_back(int32_t(i));

    // --- tokens matched in text before segmentation, longest first
    for (size_t i = 0; i < n; ++i)
        if (m.attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) m.special_tokens.push_back(int32_t(i));
    std::stable_sort(m.special_tokens.begin(), m.special_tokens.end(),
                     [&](int32_t a, int32_t b) { return m.text[size_t(a)].size() > m.text[size_t(b)].size(); });

    // --- per-model token attributes llama.cpp sets by name
    {
        std::string name = f.get_str("general.name").value_or("");
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        const std::string pre_raw = m.type == VocabType::BPE ? f.get_str("tokenizer.ggml.pre").value_or("") : "";
        auto set_attr = [&](const char* text, uint32_t bit, bool on) {
            const int32_t id = m.lookup(text);
            if (id < 0) return;
            m.attr[size_t(id)] = on ? (m.attr[size_t(id)] | bit) : (m.attr[size_t(id)] & ~bit);
        };
        if (pre_raw.find("jina-v2-de") != std::string::npos || pre_raw.find("jina-v2-es") != std::string::npos ||
            pre_raw.find("jina-v2-code") != std::string::npos) {
            set_attr("<mask>", ATTR_LSTRIP, true);
        } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
            for (int32_t id : m.special_tokens) m.attr[size_t(id)] |= ATTR_RSTRIP;
            set_attr("</s>", ATTR_RSTRIP, true);
            for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(t, ATTR_RSTRIP, false);
        }
    }

    m.ttype.resize(n);
    for (size_t i = 0; i < n; ++i) m.ttype[i] = type_from_attr(m.attr[i]);

    m.pieces.resize(n);
    for (size_t i = 0; i < n; ++i) m.pieces[i] = m.make_piece(int32_t(i));

    // --- newline token
    if (m.type == VocabType::SPM) {
        m.nl = m.spm_byte_token('\n');
    } else if (m.type == VocabType::WPM) {
        m.nl = m.pad;
    } else {
        std::vector<int32_t> ids;
        m.tokenize_bpe("\n", ids);
        m.nl = ids.empty() ? m.pad : ids[0];
    }
    return tk;
}

std::string Tokenizer::Impl::make_piece(int32_t id) const {
    const uint32_t a = attr[size_t(id)];
    const std::string& t = text[size_t(id)];
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) return t;
    if (type == VocabType::BPE) {
        if (!(a & ATTR_NORMAL)) return "";
        std::string out;
        out.reserve(t.size());
        for (uint32_t cpt : decode_utf8_lenient(t)) {
            const int b = unicode_to_byte(cpt);
            if (b >= 0) {
                out.push_back(char(b));
            } else {
                append_utf8(out, cpt);  // not a byte stand-in: the character itself
            }
        }
        return out;
    }
    if (a & ATTR_NORMAL) return replace_all(t, kSpace, " ");
    if (a & ATTR_BYTE) {
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
            const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
            if (hi >= 0 && lo >= 0) return std::string(1, char(hi * 16 + lo));
        }
        return t;
    }
    return "";
}

// ---------------------------------------------------------------------------------------------
// encoding

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    const Impl& m = *impl_;

    // Carve special tokens out of the text: each one, longest first, splits every raw fragment
    // at its occurrences (leftmost first), as llama.cpp's tokenizer_st_partition does.
    std::vector<Fragment> frags;
    if (!text.empty()) frags.push_back(Fragment{-1, 0, text.size()});
    std::vector<Fragment> next;
    for (int32_t id : m.special_tokens) {
        const uint32_t a = m.attr[size_t(id)];
        if (!parse_special && (a & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
        const std::string& t = m.text[size_t(id)];
        if (text.find(t) == std::string_view::npos) continue;
        next.clear();
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                next.push_back(fr);
                continue;
            }
            size_t off = fr.off, len = fr.len;
            while (len > 0) {
                const size_t hit = text.substr(off, len).find(t);
                if (hit == std::string_view::npos) break;
                const size_t match = off + hit;
                size_t left_len = hit;
                if (a & ATTR_LSTRIP) {
                    while (left_len > 0 && c_isspace(text[off + left_len - 1])) --left_len;
                }
                if (left_len > 0) next.push_back(Fragment{-1, off, left_len});
                next.push_back(Fragment{id, 0, 0});
                size_t r_off = match + t.size();
                size_t r_len = off + len - r_off;
                if (a & ATTR_RSTRIP) {
                    while (r_len > 0 && c_isspace(text[r_off])) {
                        ++r_off;
                        --r_len;
                    }
                }
                off = r_off;
                len = r_len;
            }
            if (len > 0) next.push_back(Fragment{-1, off, len});
        }
        frags.swap(next);
    }

    std::vector<int32_t> out;
    switch (m.type) {
        case VocabType::SPM: {
            bool prev_special = true;  // the first piece of text gets the space prefix
            if (add_special && m.add_bos && m.bos >= 0) out.push_back(m.bos);
            for (const Fragment& fr : frags) {
                if (fr.token >= 0) {
                    out.push_back(fr.token);
                    prev_special = true;
                    continue;
                }
                std::string s;
                if (m.add_space_prefix && prev_special) s = " ";
                s.append(text.substr(fr.off, fr.len));
                m.tokenize_spm(replace_all(s, " ", kSpace), out);
                prev_special = false;
            }
            if (add_special && m.add_eos && m.eos >= 0) out.push_back(m.eos);
            break;
        }
        case VocabType::BPE: {
            if (add_special && m.add_bos && m.bos >= 0) out.push_back(m.bos);
            for (const Fragment& fr : frags) {
                if (fr.token >= 0) {
                    out.push_back(fr.token);
                } else {
                    m.tokenize_bpe(text.substr(fr.off, fr.len), out);
                }
            }
            if (add_special && m.add_eos && m.eos >= 0) out.push_back(m.eos);
            break;
        }
        case VocabType::WPM: {
            if (add_special && m.bos >= 0) out.push_back(m.bos);  // [CLS]
            for (const Fragment& fr : frags) {
                if (fr.token >= 0) {
                    out.push_back(fr.token);
                } else {
                    m.tokenize_wpm(text.substr(fr.off, fr.len), out);
                }
            }
            if (add_special && m.sep >= 0) out.push_back(m.sep);  // [SEP]
            break;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// decoding

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
    const Impl& m = *impl_;
    if (id < 0 || id >= m.n_tokens()) return "";
    if (!special && (m.attr[size_t(id)] & (ATTR_UNKNOWN | ATTR_CONTROL))) return "";
    return m.pieces[size_t(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
    const Impl& m = *impl_;
    std::string out;
    bool remove_space = m.add_space_prefix;
    for (int32_t id : ids) {
        if (id >= 0 && id < m.n_tokens() && (special || !(m.attr[size_t(id)] & (ATTR_UNKNOWN | ATTR_CONTROL)))) {
            const std::string& p = m.pieces[size_t(id)];
            out.append(p, (remove_space && !p.empty() && p[0] == ' ') ? 1 : 0);
        }
        remove_space = false;
    }
    if (m.clean_spaces) out = clean_up_spaces(std::move(out));
    return out;
}

// ---------------------------------------------------------------------------------------------
// accessors

int32_t Tokenizer::n_vocab() const { return impl_->n_tokens(); }
VocabType Tokenizer::type() const { return impl_->type; }
const std::string& Tokenizer::model_name() const { return impl_->model; }
const std::string& Tokenizer::pre_name() const { return impl_->pre; }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::eot() const { return impl_->eot; }
int32_t Tokenizer::eom() const { return impl_->eom; }
int32_t Tokenizer::unk() const { return impl_->unk; }
int32_t Tokenizer::pad() const { return impl_->pad; }
int32_t Tokenizer::sep() const { return impl_->sep; }
int32_t Tokenizer::nl() const { return impl_->nl; }
int32_t Tokenizer::fim_pre() const { return impl_->fim_pre; }
int32_t Tokenizer::fim_suf() const { return impl_->fim_suf; }
int32_t Tokenizer::fim_mid() const { return impl_->fim_mid; }

bool Tokenizer::is_eog(int32_t id) const {
    return id >= 0 && id < impl_->n_tokens() && impl_->eog_flag[size_t(id)] != 0;
}
const std::vector<int32_t>& Tokenizer::eog_ids() const { return impl_->eog; }

bool Tokenizer::add_bos() const { return impl_->add_bos && impl_->bos >= 0; }
bool Tokenizer::add_eos() const { return impl_->add_eos && impl_->eos >= 0; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }
bool Tokenizer::clean_spaces() const { return impl_->clean_spaces; }

const std::string& Tokenizer::token_text(int32_t id) const {
    static const std::string empty;
    if (id < 0 || id >= impl_->n_tokens()) return empty;
    return impl_->text[size_t(id)];
}

TokenType Tokenizer::token_type(int32_t id) const {
    if (id < 0 || id >= impl_->n_tokens()) return TokenType::UNDEFINED;
    return impl_->ttype[size_t(id)];
}

float Tokenizer::token_score(int32_t id) const {
    if (id < 0 || id >= impl_->n_tokens()) return 0.0f;
    return impl_->score[size_t(id)];
}

bool Tokenizer::is_control(int32_t id) const {
    return id >= 0 && id < impl_->n_tokens() && (impl_->attr[size_t(id)] & ATTR_CONTROL);
}

bool Tokenizer::is_byte(int32_t id) const {
    return id >= 0 && id < impl_->n_tokens() && (impl_->attr[size_t(id)] & ATTR_BYTE);
}

int32_t Tokenizer::find_token(std::string_view text) const { return impl_->lookup(text); }

const std::vector<std::string>& Tokenizer::warnings() const { return impl_->warnings; }

// ---------------------------------------------------------------------------------------------
// streaming

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool special, bool continuation)
    : tok_(tok), special_(special), first_(!continuation) {}

std::string StreamDecoder::push(int32_t id) {
    std::string piece = tok_.token_to_piece(id, special_);
    if (first_) {
        first_ = false;
        if (tok_.add_space_prefix() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    }
    pending_ += piece;
    std::string out;
    const size_t used = utf8_sanitize_append(out, pending_, /*keep_tail=*/true);
    pending_.erase(0, used);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = utf8_sanitize(pending_);
    pending_.clear();
    return out;
}

void StreamDecoder::reset() {
    pending_.clear();
    first_ = true;
}

}  // namespace yiti
