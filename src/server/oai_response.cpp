#include "server/oai_response.h"

#include <ctime>
#include <mutex>
#include <random>

#include "tokenizer/tokenizer.h"

namespace yiti::server {

std::string random_hex(size_t n) {
    static std::mutex mu;
    static std::mt19937_64 rng(std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32));
    static const char* hex = "0123456789abcdef";
    std::lock_guard<std::mutex> lk(mu);
    std::string s(n, '0');
    for (auto& c : s) c = hex[rng() & 15];
    return s;
}

json usage_json(const Usage& u) {
    json j = json::object();
    j["prompt_tokens"] = u.prompt_tokens;
    j["completion_tokens"] = u.completion_tokens;
    j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
    j["prompt_tokens_details"] = json{{"cached_tokens", u.cached_tokens}};
    return j;
}

ResponseBuilder::ResponseBuilder(Kind kind, const Tokenizer& tok, std::string model, bool logprobs, int top_logprobs)
    : kind_(kind),
      tok_(tok),
      model_(std::move(model)),
      logprobs_(logprobs),
      top_logprobs_(top_logprobs),
      id_((kind == Kind::Chat ? "chatcmpl-" : "cmpl-") + random_hex(24)),
      created_((int64_t)std::time(nullptr)) {}

const char* ResponseBuilder::wire_finish_reason(const std::string& r) {
    if (r == "length") return "length";
    return "stop";
}

namespace {

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back((int)c);
    return b;
}

}  // namespace

json ResponseBuilder::chat_logprobs(const std::vector<TokenLogprob>& lp) const {
    json content = json::array();
    for (auto& t : lp) {
        const std::string piece = tok_.token_to_piece(t.id);
        json e = json::object();
        e["token"] = piece;
        e["logprob"] = t.logprob;
        e["bytes"] = bytes_of(piece);
        json top = json::array();
        for (size_t i = 0; i < t.top.size() && (int)i < top_logprobs_; ++i) {
            const std::string p = tok_.token_to_piece(t.top[i].id);
            top.push_back(json{{"token", p}, {"logprob", t.top[i].logprob}, {"bytes", bytes_of(p)}});
        }
        e["top_logprobs"] = std::move(top);
        content.push_back(std::move(e));
    }
    return json{{"content", std::move(content)}, {"refusal", nullptr}};
}

json ResponseBuilder::completion_logprobs(const std::vector<TokenLogprob>& lp, size_t offset_base) const {
    json tokens = json::array(), token_lp = json::array(), tops = json::array(), offsets = json::array();
    for (auto& t : lp) {
        tokens.push_back(tok_.token_to_piece(t.id));
        token_lp.push_back(t.logprob);
        if (top_logprobs_ > 0) {
            json m = json::object();
            for (size_t i = 0; i < t.top.size() && (int)i < top_logprobs_; ++i) {
                std::string p = tok_.token_to_piece(t.top[i].id);
                if (!m.contains(p)) m[p] = t.top[i].logprob;
            }
            tops.push_back(std::move(m));
        }
        offsets.push_back(offset_base + t.text_offset);
    }
    json j = json::object();
    j["tokens"] = std::move(tokens);
    j["token_logprobs"] = std::move(token_lp);
    j["top_logprobs"] = top_logprobs_ > 0 ? std::move(tops) : json(nullptr);
    j["text_offset"] = std::move(offsets);
    return j;
}

json ResponseBuilder::chat_completion(const std::vector<ChoiceResult>& choices, const Usage& u) const {
    json j = json::object();
    j["id"] = id_;
    j["object"] = "chat.completion";
    j["created"] = created_;
    j["model"] = model_;
    json arr = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
        const auto& c = choices[i];
        json msg = json::object();
        msg["role"] = "assistant";
        msg["content"] = c.content;
        if (!c.reasoning.empty()) msg["reasoning_content"] = c.reasoning;
        json ch = json::object();
        ch["index"] = (int)i;
        ch["message"] = std::move(msg);
        ch["logprobs"] = logprobs_ ? chat_logprobs(c.logprobs) : json(nullptr);
        ch["finish_reason"] = wire_finish_reason(c.finish_reason);
        arr.push_back(std::move(ch));
    }
    j["choices"] = std::move(arr);
    j["usage"] = usage_json(u);
    j["system_fingerprint"] = "yiti-0.1.0";
    return j;
}

json ResponseBuilder::text_completion(const std::vector<ChoiceResult>& choices, const Usage& u,
                                      const std::vector<std::string>& echo_prefix) const {
    json j = json::object();
    j["id"] = id_;
    j["object"] = "text_completion";
    j["created"] = created_;
    j["model"] = model_;
    json arr = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
        const auto& c = choices[i];
        const std::string& pre = i < echo_prefix.size() ? echo_prefix[i] : std::string();
        json ch = json::object();
        ch["text"] = pre + c.content;
        ch["index"] = (int)i;
        ch["logprobs"] = logprobs_ ? completion_logprobs(c.logprobs, pre.size()) : json(nullptr);
        ch["finish_reason"] = wire_finish_reason(c.finish_reason);
        arr.push_back(std::move(ch));
    }
    j["choices"] = std::move(arr);
    j["usage"] = usage_json(u);
    j["system_fingerprint"] = "yiti-0.1.0";
    return j;
}

json ResponseBuilder::chunk_base(const char* object) const {
    json j = json::object();
    j["id"] = id_;
    j["object"] = object;
    j["created"] = created_;
    j["model"] = model_;
    j["system_fingerprint"] = "yiti-0.1.0";
    return j;
}

json ResponseBuilder::chat_role_chunk(int index) const {
    json j = chunk_base("chat.completion.chunk");
    json ch = json::object();
    ch["index"] = index;
    ch["delta"] = json{{"role", "assistant"}, {"content", ""}};
    ch["logprobs"] = nullptr;
    ch["finish_reason"] = nullptr;
    j["choices"] = json::array({std::move(ch)});
    if (include_usage_) j["usage"] = nullptr;
    return j;
}

json ResponseBuilder::chat_delta_chunk(int index, const std::string& content, const std::string& reasoning,
                                       const std::vector<TokenLogprob>& lp) const {
    json j = chunk_base("chat.completion.chunk");
    json delta = json::object();
    if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
    if (!content.empty() || reasoning.empty()) delta["content"] = content;
    json ch = json::object();
    ch["index"] = index;
    ch["delta"] = std::move(delta);
    ch["logprobs"] = logprobs_ ? chat_logprobs(lp) : json(nullptr);
    ch["finish_reason"] = nullptr;
    j["choices"] = json::array({std::move(ch)});
    if (include_usage_) j["usage"] = nullptr;
    return j;
}

json ResponseBuilder::chat_finish_chunk(int index, const std::string& finish_reason) const {
    json j = chunk_base("chat.completion.chunk");
    json ch = json::object();
    ch["index"] = index;
    ch["delta"] = json::object();
    ch["logprobs"] = nullptr;
    ch["finish_reason"] = wire_finish_reason(finish_reason);
    j["choices"] = json::array({std::move(ch)});
    if (include_usage_) j["usage"] = nullptr;
    return j;
}

json ResponseBuilder::text_chunk(int index, const std::string& text, const std::vector<TokenLogprob>& lp,
                                 size_t offset_base, const char* finish_reason) const {
    json j = chunk_base("text_completion");
    json ch = json::object();
    ch["text"] = text;
    ch["index"] = index;
    ch["logprobs"] = logprobs_ ? completion_logprobs(lp, offset_base) : json(nullptr);
    ch["finish_reason"] = finish_reason ? json(finish_reason) : json(nullptr);
    j["choices"] = json::array({std::move(ch)});
    if (include_usage_) j["usage"] = nullptr;
    return j;
}

json ResponseBuilder::usage_chunk(const Usage& u) const {
    json j = chunk_base(kind_ == Kind::Chat ? "chat.completion.chunk" : "text_completion");
    j["choices"] = json::array();
    j["usage"] = usage_json(u);
    return j;
}

}  // namespace yiti::server
