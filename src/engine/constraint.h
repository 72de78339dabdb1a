// Grammar-constrained generation per sequence (structured outputs): which tokens may come next,
// from a grammar (sample/grammar.h), optionally after a free reasoning block.
//
//   ConstraintVocab  per model, built once: the token vocabulary (prefix trie) and the masks the
//                    reasoning phases use.
//   ConstraintSpec   per request (shared by its choices, immutable): the grammar's MaskCache (keep
//                    one per schema, shared between requests) and where the constraint starts.
//   Constraint       per sequence (engine thread only): the matcher state. mask() before sampling,
//                    accept() after; complete() once the document is finished.
//
// Phases: Optional (a reasoning model that may open "<think>" itself: its opening token or the
// grammar's first tokens), Reasoning (anything but end-of-generation, until the closing tag),
// AfterClose (a few whitespace-only tokens may follow the closing tag), Grammar.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "sample/grammar.h"

namespace yiti::engine {

struct ConstraintVocab {
    std::shared_ptr<const sample::TokenVocab> vocab;
    std::string open_tag, close_tag;
    int32_t open_token = -1;      // a token whose text is exactly open_tag (-1: none)
    sample::TokenMask reasoning;  // allowed while reasoning: all but end-of-generation ids and
                                  // tokens that close the block and go on with non-whitespace
    sample::TokenMask ws;         // whitespace-only tokens

    static std::shared_ptr<const ConstraintVocab> build(std::shared_ptr<const sample::TokenVocab> v,
                                                        std::string open_tag = "<think>",
                                                        std::string close_tag = "</think>");
};

struct ConstraintSpec {
    enum class Start {
        Now,               // the grammar applies from the first token
        AfterReasoning,    // the output starts inside a reasoning block (the prompt opened it)
        OptionalReasoning  // the model may open a reasoning block with its first token
    };
    std::shared_ptr<sample::MaskCache> cache;
    std::shared_ptr<const ConstraintVocab> cv;
    Start start = Start::Now;
};

class Constraint {
public:
    explicit Constraint(std::shared_ptr<const ConstraintSpec> spec);

    // The tokens allowed next (valid until the next call). Never empty: when the grammar allows
    // nothing (it cannot happen with a well-formed grammar), the end-of-generation ids.
    const sample::TokenMask& mask();
    // The token that was chosen.
    void accept(int32_t token);
    // The document is finished: the grammar may end here and nothing but whitespace could follow.
    bool complete();
    bool in_grammar() const { return phase_ == Phase::Grammar; }

private:
    enum class Phase { Optional, Reasoning, AfterClose, Grammar };
    void enter_grammar(std::string_view first);

    std::shared_ptr<const ConstraintSpec> spec_;
    sample::Matcher m_;
    sample::GrammarState st_;
    sample::TokenMask mask_;
    Phase phase_ = Phase::Grammar;
    std::string tail_;   // Reasoning: the output's last bytes (to find the closing tag)
    int n_ws_after_close_ = 0;
    bool failed_ = false;       // a token the grammar rejects was accepted (cannot happen)
    int complete_cache_ = -1;   // complete() for the current state (-1: unknown)
};

}  // namespace yiti::engine
