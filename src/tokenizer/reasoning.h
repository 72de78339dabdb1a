// Splits a reasoning model's streamed output into its reasoning ("<think>...</think>") and its
// answer (content).
//
// Feed decoded text chunks as they are generated; each call returns the text that is now known to
// be reasoning or content. A chunk may end inside a tag ("</thi"): such a possible tag prefix is
// held back until the next chunk decides it, and finish() releases whatever is still held.
//
// Rules:
//  - start_in_reasoning: the output starts inside the reasoning block (templates such as
//    DeepSeek-R1 or QwQ end the prompt with "<think>\n", so the model only writes "...</think>").
//    See prompt_ends_in_reasoning() to derive it from the rendered prompt.
//  - The opening tag is recognized at the start of the content, or right after a closing tag,
//    with only whitespace before it; elsewhere it is ordinary content text. The closing tag ends
//    the reasoning wherever it appears. A closing tag outside reasoning is ordinary content. An
//    opening tag repeated at the very start of the reasoning (the prompt opened the block and the
//    model wrote "<think>" again) is dropped.
//  - trim (default on): whitespace right after the opening tag, right before the closing tag, and
//    right after the closing tag (before the answer) is dropped, as chat templates do when they
//    re-render history ("<think>\n" + reasoning.strip() + "\n</think>\n\n" + content). With trim
//    off, reasoning is exactly the text between the tags and content everything outside them.
#pragma once

#include <string>
#include <string_view>

namespace yiti {

class ReasoningSplitter {
public:
    struct Delta {
        std::string reasoning;
        std::string content;
        bool empty() const { return reasoning.empty() && content.empty(); }
    };

    explicit ReasoningSplitter(bool start_in_reasoning, std::string open = "<think>", std::string close = "</think>",
                               bool trim = true);

    Delta push(std::string_view text);  // the next chunk of output
    Delta finish();                     // end of output: flushes held-back text

    bool in_reasoning() const { return reasoning_; }
    // True once any reasoning block was entered (or the splitter started in one).
    bool saw_reasoning() const { return saw_reasoning_; }

    // Splits a whole, finished output in one go.
    static Delta split(std::string_view text, bool start_in_reasoning, std::string open = "<think>",
                       std::string close = "</think>", bool trim = true);

private:
    void process(Delta& d, bool final);
    void emit_reasoning(Delta& d, std::string_view s, bool block_end);

    std::string open_, close_;
    bool trim_;
    bool reasoning_;
    bool saw_reasoning_;
    bool segment_start_ = true;      // content: nothing but whitespace seen since start / a closing tag
    bool after_close_ = false;       // content segment began with a closing tag
    bool reasoning_start_ = false;   // reasoning: nothing but whitespace seen since the opening tag
    std::string buf_;                // undecided text
    std::string ws_hold_;            // reasoning: trailing whitespace held until we know if the block ends
};

// True when a rendered prompt leaves the model inside a reasoning block: the last `open` tag in it
// comes after the last `close` tag (e.g. DeepSeek-R1's "<｜Assistant｜><think>\n").
bool prompt_ends_in_reasoning(std::string_view prompt, std::string_view open = "<think>",
                              std::string_view close = "</think>");

}  // namespace yiti
