// Pre-tokenizers for byte-level BPE: the splitting regexes of every tokenizer.ggml.pre value
// llama.cpp knows, written for PCRE2 (UTF + UCP), and the splitting procedure.
//
// llama.cpp runs these patterns partly with hand-written matchers and partly with std::regex over
// a text where every non-ASCII code point is collapsed to a byte standing for its category. The
// PCRE2 forms below reproduce that behaviour exactly:
//  * Patterns with Unicode properties are matched against a subject where each non-ASCII
//    character is replaced by a stand-in of its category (from tables of the Unicode version
//    llama.cpp uses), see make_subject().
//  * \s is llama.cpp's whitespace (the Unicode White_Space set), spelled out as WS below, since
//    PCRE2's own \s differs from it (U+180E); and, as there, non-ASCII whitespace is matched as if
//    it were \v.
//  * `$` only matches at the very end (PCRE2_DOLLAR_ENDONLY), as in ECMAScript.
//  * Each pattern only sees the piece it is splitting: a lookahead never looks past its end.
//  * In llama.cpp's collapsed form ASCII '~' is neither \p{P} nor \p{S}; the one pattern where
//    this matters (deepseek-v3) spells that out.
#include <algorithm>
#include <cstring>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unicode.h"

namespace yiti::tok {

namespace {

#define WS "\\t-\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
const char* const kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])";

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
#define LLAMA3_HEAD "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define LLAMA3_TAIL                                                                                   \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"
const char* const kLlama3 = LLAMA3_HEAD "\\p{N}{1,3}" LLAMA3_TAIL;
const char* const kQwen2 = LLAMA3_HEAD "\\p{N}" LLAMA3_TAIL;

// The cased letters of DeepSeek LLM's tokenizer.json.
const char* const kDeepseekLetters =
    "[" WS "]?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}]+";

// CJK ideographs, the range up to them, and Hangul (DeepSeek LLM / Coder).
const char* const kDeepseekCjk = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";

// " ?[^(\s|.,!?…。，、।۔،)]+"
const char* const kPoro = " ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+";

std::vector<PreConfig> make_configs() {
    std::vector<PreConfig> v;
    auto add = [&](const char* name, std::vector<std::string> pats, bool clean = true) -> PreConfig& {
        PreConfig c;
        c.name = name;
        c.patterns = std::move(pats);
        c.clean_spaces = clean;
        v.push_back(std::move(c));
        return v.back();
    };
    add("default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"});
    {
        PreConfig& c = add("llama3", {kLlama3});
        c.ignore_merges = true;
        c.add_bos = true;
    }
    add("dbrx", {kLlama3});
    add("smaug-bpe", {kLlama3});
    add("deepseek-llm",
        {"[\\r\\n]", kDeepseekLetters,
         "[" WS "]?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
         "[" WS "]+$", kDeepseekCjk, "\\p{N}+"},
        false);
    add("deepseek-v3",
        {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
         // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
         //  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+     ('~' being neither P nor S)
         "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
         "|(?:~|[^\\r\\n\\p{L}\\p{P}\\p{S}])?[\\p{L}\\p{M}]+"
         "| ?(?:(?!~)[\\p{P}\\p{S}])+[\\r\\n]*"
         "|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"},
        false);
    add("deepseek-coder", {"[\\r\\n]", "[" WS "]?\\p{L}+", "[" WS "]?\\p{P}+", kDeepseekCjk, "\\p{N}"}, false);
    add("falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"});
    add("starcoder", {"\\p{N}", kGpt2});
    add("refact", {"\\p{N}", kGpt2});
    add("command-r", {"\\p{N}", kGpt2}, false);
    add("smollm", {"\\p{N}", kGpt2}, false);
    add("codeshell", {"\\p{N}", kGpt2});
    add("exaone", {"\\p{N}", kGpt2});
    add("minerva-7b", {"\\p{N}", kGpt2});
    add("gpt-2", {kGpt2});
    add("mpt", {kGpt2});
    add("olmo", {kGpt2});
    add("jais", {kGpt2});
    add("qwen2", {kQwen2}, false);
    add("stablelm2", {kQwen2});
    add("poro-chat", {kPoro}, false);
    add("bloom", {kPoro});
    add("gpt3-finnish", {kPoro});
    add("chatglm-bpe", {kLlama3}).no_bos = true;
    add("viking", {kPoro, "\\p{N}"}, false);
    {
        PreConfig& c = add(
            "tekken",
            {"[^\\r\\n\\p{L}\\p{N}]?(?:(?=\\p{L})[^a-z])*(?:(?=\\p{L})[^A-Z])+"
             "|[^\\r\\n\\p{L}\\p{N}]?(?:(?=\\p{L})[^a-z])+(?:(?=\\p{L})[^A-Z])*"
             "|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"},
            false);
        c.ignore_merges = true;
        c.add_bos = true;
    }
    {
        PreConfig& c = add("chameleon",
                           {"<sentinel:[0-9]+>", "(?:IMGIMG)(?:(?:A|B|C|D|E|F|G|H|I){1,4})Z", "(?:[\\t\\n]|    |  )",
                            "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", kGpt2},
                           false);
        c.add_bos = true;
    }
    return v;
}

struct Alias {
    const char* name;
    const char* config;
};
const Alias kAliases[] = {
    {"llama-v3", "llama3"},          {"llama-bpe", "llama3"},      {"falcon3", "llama3"},
    {"phi-2", "gpt-2"},              {"jina-es", "gpt-2"},         {"jina-de", "gpt-2"},
    {"gigachat", "gpt-2"},           {"jina-v1-en", "gpt-2"},      {"jina-v2-es", "gpt-2"},
    {"jina-v2-de", "gpt-2"},         {"jina-v2-code", "gpt-2"},    {"roberta-bpe", "gpt-2"},
    {"deepseek-r1-qwen", "qwen2"},
};

const std::vector<PreConfig>& configs() {
    static const std::vector<PreConfig> v = make_configs();
    return v;
}

const PreConfig& megrez_config() {
    // llama.cpp maps "megrez" to the Qwen2 regex but keeps the clean-up of spaces.
    static const PreConfig c = [] {
        PreConfig m;
        m.name = "megrez";
        m.patterns = {kQwen2};
        return m;
    }();
    return c;
}

// JIT code runs on a stack of its own, grown on demand for long inputs.
struct JitStack {
    pcre2_jit_stack* stack = nullptr;
    pcre2_match_context* mctx = nullptr;
    JitStack() {
        stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
        mctx = pcre2_match_context_create(nullptr);
        if (stack && mctx) pcre2_jit_stack_assign(mctx, nullptr, stack);
    }
    ~JitStack() {
        if (mctx) pcre2_match_context_free(mctx);
        if (stack) pcre2_jit_stack_free(stack);
    }
};

pcre2_match_context* thread_match_context() {
    thread_local JitStack js;
    return js.mctx;
}

}  // namespace

const PreConfig* find_pre_config(std::string_view pre) {
    if (pre == "megrez") return &megrez_config();
    for (const Alias& a : kAliases) {
        if (pre == a.name) pre = a.config;
    }
    for (const PreConfig& c : configs()) {
        if (c.name == pre) return &c;
    }
    return nullptr;
}

const PreConfig& default_pre_config() { return configs().front(); }

struct PreTokenizer::Impl {
    std::vector<pcre2_code*> codes;
    std::vector<bool> collapsed;  // the pattern uses Unicode properties
    ~Impl() {
        for (pcre2_code* c : codes) pcre2_code_free(c);
    }
};

PreTokenizer::PreTokenizer(const PreConfig& cfg) : impl_(std::make_unique<Impl>()) {
    for (const std::string& pat : cfg.patterns) {
        int err = 0;
        PCRE2_SIZE eoff = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &eoff, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            throw Error(strprintf("tokenizer: pre-tokenizer '%s': regex error at %zu: %s", cfg.name.c_str(),
                                  size_t(eoff), reinterpret_cast<const char*>(msg)));
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when unavailable
        impl_->codes.push_back(code);
        impl_->collapsed.push_back(pat.find("\\p{") != std::string::npos);
    }
}

PreTokenizer::~PreTokenizer() = default;

namespace {

// The text a pattern is matched against, and where each code point starts in it.
struct Subject {
    std::string s;
    std::vector<uint32_t> boff;  // code point index -> byte offset (n + 1 entries)
    std::vector<uint32_t> cidx;  // byte offset -> code point index (valid at code point starts)
};

// Like llama.cpp, every pattern sees non-ASCII whitespace as \v. Patterns with Unicode
// properties (\p{..}) see every other non-ASCII character as a stand-in of its category from
// the generated tables, so the classification is llama.cpp's (Unicode 15.1) and not that of
// the PCRE2 build; the others see the characters themselves. Surrogates, which llama.cpp's
// decoder lets through, become a private-use character (class C) to keep the subject valid.
Subject make_subject(const std::vector<uint32_t>& cpts, bool collapsed) {
    Subject sub;
    const size_t n = cpts.size();
    sub.s.reserve(n * 2);
    sub.boff.resize(n + 1);
    for (size_t i = 0; i < n; ++i) {
        sub.boff[i] = uint32_t(sub.s.size());
        uint32_t c = cpts[i];
        if (c >= 0x80) {
            if (cpt_is_whitespace(c)) {
                c = 0x0B;
            } else if (collapsed) {
                switch (cpt_category(c)) {
                    case CAT_LETTER: c = 0xAA; break;   // FEMININE ORDINAL INDICATOR, Lo
                    case CAT_NUMBER: c = 0xB2; break;   // SUPERSCRIPT TWO, No
                    case CAT_PUNCT: c = 0xA1; break;    // INVERTED EXCLAMATION MARK, Po
                    case CAT_SYMBOL: c = 0xA6; break;   // BROKEN BAR, So
                    case CAT_MARK: c = 0x300; break;    // COMBINING GRAVE ACCENT, Mn
                    default: c = 0xE000; break;         // private use, C
                }
            } else if (c >= 0xD800 && c <= 0xDFFF) {
                c = 0xE000;
            }
        }
        append_utf8(sub.s, c);
    }
    sub.boff[n] = uint32_t(sub.s.size());
    sub.cidx.assign(sub.s.size() + 1, 0);
    for (size_t i = 0; i <= n; ++i) sub.cidx[sub.boff[i]] = uint32_t(i);
    return sub;
}

}  // namespace

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
    std::vector<std::string> words;
    if (text.empty()) return words;

    const std::vector<uint32_t> cpts = decode_utf8_lenient(text);  // invalid bytes -> U+FFFD
    const size_t n = cpts.size();
    Subject subjects[2];
    bool built[2] = {false, false};

    std::vector<uint32_t> pieces{uint32_t(n)};  // lengths in code points
    std::vector<uint32_t> next;
    pcre2_match_context* mctx = thread_match_context();
    for (size_t k = 0; k < impl_->codes.size(); ++k) {
        pcre2_code* code = impl_->codes[k];
        const int which = impl_->collapsed[k] ? 1 : 0;
        if (!built[which]) {
            subjects[which] = make_subject(cpts, which == 1);
            built[which] = true;
        }
        const std::string& subject = subjects[which].s;
        const std::vector<uint32_t>& boff = subjects[which].boff;
        const std::vector<uint32_t>& cidx = subjects[which].cidx;
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
        if (!md) throw Error("tokenizer: out of memory");
        next.clear();
        size_t start = 0;
        for (uint32_t len : pieces) {
            const size_t bs = boff[start], be = boff[start + len];
            const auto* subj = reinterpret_cast<PCRE2_SPTR>(subject.data() + bs);
            const size_t slen = be - bs;
            size_t pos = 0;   // byte offset inside the piece where the next search starts
            size_t done = 0;  // bytes of the piece already emitted
            while (pos <= slen) {
                int rc = pcre2_match(code, subj, slen, pos, PCRE2_NO_UTF_CHECK, md, mctx);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    pcre2_match_data_free(md);
                    throw Error(strprintf("tokenizer: regex match failed (PCRE2 error %d)", rc));
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
                const size_t ms = ov[0], me = ov[1];
                if (me == ms) {  // an empty match splits nothing; step over one character
                    if (ms >= slen) break;
                    pos = ms + utf8_len(uint8_t(subject[bs + ms]));
                    continue;
                }
                if (ms > done) next.push_back(cidx[bs + ms] - cidx[bs + done]);
                next.push_back(cidx[bs + me] - cidx[bs + ms]);
                done = pos = me;
            }
            if (done < slen) next.push_back(cidx[be] - cidx[bs + done]);
            start += len;
        }
        pcre2_match_data_free(md);
        pieces.swap(next);
    }

    words.reserve(pieces.size());
    size_t start = 0;
    for (uint32_t len : pieces) {
        std::string w;
        for (size_t i = start; i < start + len; ++i) append_utf8(w, cpts[i]);
        words.push_back(std::move(w));
        start += len;
    }
    return words;
}

}  // namespace yiti::tok
