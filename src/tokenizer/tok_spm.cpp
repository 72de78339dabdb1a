// SentencePiece ("llama"): start from single characters and repeatedly merge the adjacent pair
// whose concatenation is the vocabulary entry with the highest score (ties: leftmost pair first).
// Pieces that are not tokens at the end fall back to byte tokens <0xNN>.
#include <algorithm>
#include <queue>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unicode.h"

namespace yiti {

namespace {

struct Symbol {
    int prev;
    int next;
    uint32_t start;
    uint32_t len;
};

struct Bigram {
    int left, right;
    float score;
    uint32_t size;
};

struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

int32_t Tokenizer::Impl::spm_byte_token(uint8_t b) const {
    static const char hex[] = "0123456789ABCDEF";
    const char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    int32_t id = lookup(std::string_view(buf, 6));
    if (id >= 0) return id;
    const char c = char(b);
    id = lookup(std::string_view(&c, 1));
    if (id >= 0) return id;
    return unk;  // llama.cpp throws here; the unknown token (or nothing) is the fallback
}

void Tokenizer::Impl::tokenize_spm(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<Symbol> syms;
    syms.reserve(text.size());
    for (size_t off = 0; off < text.size();) {
        const size_t len = std::min(text.size() - off, tok::utf8_len(uint8_t(text[off])));
        syms.push_back(Symbol{int(syms.size()) - 1, -1, uint32_t(off), uint32_t(len)});
        off += len;
    }
    for (size_t i = 0; i + 1 < syms.size(); ++i) syms[i].next = int(i + 1);

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto try_pair = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const uint32_t size = syms[l].len + syms[r].len;
        const int32_t id = lookup(std::string_view(text.data() + syms[l].start, size));
        if (id < 0) return;
        queue.push(Bigram{l, r, score[size_t(id)], size});
    };
    for (size_t i = 1; i < syms.size(); ++i) try_pair(int(i - 1), int(i));

    while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = syms[bg.left];
        Symbol& r = syms[bg.right];
        if (l.len == 0 || r.len == 0 || l.len + r.len != bg.size) continue;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) syms[r.next].prev = bg.left;
        try_pair(l.prev, bg.left);
        try_pair(bg.left, l.next);
    }

    for (int i = 0; i >= 0; i = syms[i].next) {
        const Symbol& s = syms[i];
        const std::string_view piece(text.data() + s.start, s.len);
        const int32_t id = lookup(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        for (unsigned char c : piece) {
            const int32_t bid = spm_byte_token(c);
            if (bid >= 0) out.push_back(bid);
        }
    }
}

}  // namespace yiti
