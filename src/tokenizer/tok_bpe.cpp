// Byte-level BPE ("gpt2"): pre-tokenize, map bytes to their printable stand-ins, then merge the
// adjacent pair with the lowest merge rank until none applies (ties: leftmost pair first).
#include <algorithm>
#include <queue>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unicode.h"

namespace yiti {

namespace {

struct Symbol {
    int prev;
    int next;
    uint32_t start;  // byte offset in the word
    uint32_t len;    // 0 once merged into its left neighbour
    int32_t id;      // the token with this text, -1 when there is none
};

struct Bigram {
    int left, right;
    int rank;
    uint32_t len_left, len_right;  // lengths when queued; a change means the pair is stale
};

struct BigramOrder {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

void Tokenizer::Impl::tokenize_bpe(std::string_view raw, std::vector<int32_t>& out) const {
    const std::vector<std::string> words = pretok->split(raw);
    std::vector<Symbol> syms;
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    std::string word;

    for (const std::string& w : words) {
        word.clear();
        for (unsigned char c : w) word += tok::byte_to_unicode(c);
        if (word.empty()) continue;

        if (ignore_merges) {
            const int32_t id = lookup(word);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
        }

        syms.clear();
        for (size_t off = 0; off < word.size();) {
            const size_t len = std::min(word.size() - off, tok::utf8_len(uint8_t(word[off])));
            syms.push_back(Symbol{int(syms.size()) - 1, -1, uint32_t(off), uint32_t(len),
                                  lookup(std::string_view(word.data() + off, len))});
            off += len;
        }
        for (size_t i = 0; i + 1 < syms.size(); ++i) syms[i].next = int(i + 1);

        auto try_pair = [&](int l, int r) {
            if (l < 0 || r < 0) return;
            const std::string_view a(word.data() + syms[l].start, syms[l].len);
            const std::string_view b(word.data() + syms[r].start, syms[r].len);
            const int rank = bpe_rank(a, syms[l].id, b, syms[r].id);
            if (rank < 0) return;
            queue.push(Bigram{l, r, rank, syms[l].len, syms[r].len});
        };
        for (size_t i = 1; i < syms.size(); ++i) try_pair(int(i - 1), int(i));

        while (!queue.empty()) {
            const Bigram bg = queue.top();
            queue.pop();
            Symbol& l = syms[bg.left];
            Symbol& r = syms[bg.right];
            if (l.len == 0 || r.len == 0 || l.len != bg.len_left || r.len != bg.len_right) continue;
            l.len += r.len;
            r.len = 0;
            l.id = lookup(std::string_view(word.data() + l.start, l.len));
            l.next = r.next;
            if (r.next >= 0) syms[r.next].prev = bg.left;
            try_pair(l.prev, bg.left);
            try_pair(bg.left, l.next);
        }

        for (int i = 0; i >= 0; i = syms[i].next) {
            const Symbol& s = syms[i];
            if (s.len == 0) continue;
            if (s.id >= 0) {
                out.push_back(s.id);
                continue;
            }
            const std::string_view piece(word.data() + s.start, s.len);
            // Not a token: each byte of the piece on its own, where that is a token.
            for (char c : piece) {
                const int32_t bid = lookup(std::string_view(&c, 1));
                if (bid >= 0) out.push_back(bid);
            }
        }
    }
}

}  // namespace yiti
