#include "server/oai_request.h"

#include <cmath>

#include "core/error.h"

namespace yiti::server {

const char* error_type_for_status(int status) {
    switch (status) {
        case 401: return "authentication_error";
        case 403: return "permission_error";
        case 404: return "invalid_request_error";
        case 429: return "rate_limit_error";
        default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

ApiError::ApiError(int status_, std::string message, std::string param_, std::string code_, std::string type_)
    : std::runtime_error(std::move(message)),
      status(status_),
      type(type_.empty() ? error_type_for_status(status_) : std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

json error_object(const ApiError& e) {
    json err = json::object();
    err["message"] = e.what();
    err["type"] = e.type;
    err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
    err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
    return json{{"error", err}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(const ApiError& e) { return dump(error_object(e)); }

size_t json_nesting_depth(std::string_view text, size_t limit) {
    size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char ch : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (ch == '\\')
                escaped = true;
            else if (ch == '"')
                in_string = false;
            continue;
        }
        if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > limit) return deepest;
            }
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

json parse_body(const std::string& body, int max_depth) {
    if (body.empty())
        throw ApiError(400, "The request body is empty; expected a JSON object.", "", "invalid_json");
    // Nesting is checked before parsing: a body of a few hundred KB of '[' must not run the
    // parser (or anything that walks the result) out of stack.
    if (max_depth > 0 && json_nesting_depth(body, (size_t)max_depth) > (size_t)max_depth)
        throw ApiError(400,
                       strprintf("The JSON body of your request is nested more than %d levels deep.", max_depth), "",
                       "invalid_json");
    json j;
    try {
        j = json::parse(body);
    } catch (const json::exception& e) {
        // Syntax errors, and numbers out of range ("1e400"): the client's JSON, not our failure.
        // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> after the id.
        std::string what = e.what();
        size_t p = what.find("] ");
        throw ApiError(400,
                       "We could not parse the JSON body of your request: " +
                           (p == std::string::npos ? what : what.substr(p + 2)),
                       "", "invalid_json");
    }
    if (!j.is_object()) throw ApiError(400, "The request body must be a JSON object.", "", "invalid_json");
    return j;
}

namespace {

const char* kind(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "an integer";
        case json::value_t::number_float: return "a decimal";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        default: return "an unknown value";
    }
}

[[noreturn]] void type_error(const std::string& param, const char* expected, const json& got) {
    throw ApiError(400, strprintf("Invalid type for '%s': expected %s, but got %s instead.", param.c_str(), expected, kind(got)),
                   param, "invalid_type");
}

// The field when present and not null.
const json* field(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end() || it->is_null()) return nullptr;
    return &*it;
}

bool get_bool(const json& o, const char* name, bool def) {
    const json* v = field(o, name);
    if (!v) return def;
    if (!v->is_boolean()) type_error(name, "a boolean", *v);
    return v->get<bool>();
}

std::string fmt_num(double x) {
    if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e15) return strprintf("%.0f", x);
    return strprintf("%g", x);
}

double get_number(const json& o, const char* name, double def, double lo, double hi) {
    const json* v = field(o, name);
    if (!v) return def;
    if (!v->is_number()) type_error(name, "a decimal", *v);
    double x = v->get<double>();
    if (!std::isfinite(x)) throw ApiError(400, strprintf("Invalid '%s': the value must be finite.", name), name, "invalid_value");
    if (x < lo)
        throw ApiError(400,
                       strprintf("Invalid '%s': decimal below minimum value. Expected a value >= %s, but got %s instead.", name,
                                 fmt_num(lo).c_str(), fmt_num(x).c_str()),
                       name, "decimal_below_min_value");
    if (x > hi)
        throw ApiError(400,
                       strprintf("Invalid '%s': decimal above maximum value. Expected a value <= %s, but got %s instead.", name,
                                 fmt_num(hi).c_str(), fmt_num(x).c_str()),
                       name, "decimal_above_max_value");
    return x;
}

int64_t check_int(const json& v, const std::string& name, int64_t lo, int64_t hi) {
    int64_t x;
    if (v.is_number_integer()) {
        if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)INT64_MAX)
            x = INT64_MAX;
        else
            x = v.get<int64_t>();
    } else if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
               std::fabs(v.get<double>()) < 9e15) {
        x = (int64_t)v.get<double>();  // 16.0 is accepted as 16, as Python clients may send it
    } else {
        type_error(name, "an integer", v);
    }
    if (x < lo)
        throw ApiError(400,
                       strprintf("Invalid '%s': integer below minimum value. Expected a value >= %lld, but got %lld instead.",
                                 name.c_str(), (long long)lo, (long long)x),
                       name, "integer_below_min_value");
    if (x > hi)
        throw ApiError(400,
                       strprintf("Invalid '%s': integer above maximum value. Expected a value <= %lld, but got %lld instead.",
                                 name.c_str(), (long long)hi, (long long)x),
                       name, "integer_above_max_value");
    return x;
}

int64_t get_int(const json& o, const char* name, int64_t def, int64_t lo, int64_t hi) {
    const json* v = field(o, name);
    if (!v) return def;
    return check_int(*v, name, lo, hi);
}

std::string get_string(const json& o, const char* name, const std::string& def) {
    const json* v = field(o, name);
    if (!v) return def;
    if (!v->is_string()) type_error(name, "a string", *v);
    return v->get<std::string>();
}

void parse_response_format(const json& rf, ResponseFormat& out) {
    if (!rf.is_object()) type_error("response_format", "an object", rf);
    const json* t = field(rf, "type");
    if (!t)
        throw ApiError(400, "Missing required parameter: 'response_format.type'.", "response_format.type",
                       "missing_required_parameter");
    if (!t->is_string()) type_error("response_format.type", "a string", *t);
    const std::string type = t->get<std::string>();
    if (type == "text") {
        out.type = ResponseFormat::Type::Text;
    } else if (type == "json_object") {
        out.type = ResponseFormat::Type::JsonObject;
        if (const json* sc = field(rf, "schema")) {  // extension (as llama.cpp's server takes it)
            if (!sc->is_object() && !sc->is_boolean()) type_error("response_format.schema", "an object", *sc);
            out.schema = *sc;
        }
    } else if (type == "json_schema") {
        out.type = ResponseFormat::Type::JsonSchema;
        const json* js = field(rf, "json_schema");
        if (!js)
            throw ApiError(400, "Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema",
                           "missing_required_parameter");
        if (!js->is_object()) type_error("response_format.json_schema", "an object", *js);
        if (const json* n = field(*js, "name")) {
            if (!n->is_string()) type_error("response_format.json_schema.name", "a string", *n);
            out.name = n->get<std::string>();
        }
        if (const json* st = field(*js, "strict")) {
            if (!st->is_boolean()) type_error("response_format.json_schema.strict", "a boolean", *st);
            out.strict = st->get<bool>();
        }
        if (const json* d = field(*js, "description"); d && !d->is_string())
            type_error("response_format.json_schema.description", "a string", *d);
        if (const json* sc = field(*js, "schema")) {
            if (!sc->is_object() && !sc->is_boolean()) type_error("response_format.json_schema.schema", "an object", *sc);
            out.schema = *sc;
        } else {
            out.schema = json::object();  // no schema: any JSON value
        }
    } else {
        throw ApiError(400,
                       strprintf("Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                                 type.c_str()),
                       "response_format.type", "invalid_value");
    }
}

// Fields common to both endpoints.
void parse_common(const json& b, GenParams& p, const RequestLimits& lim) {
    p.model = get_string(b, "model", "");
    auto& s = p.sampling;
    // OpenAI's defaults: plain sampling at temperature 1 over the whole distribution.
    s.temperature = (float)get_number(b, "temperature", 1.0, 0, 2);
    s.top_p = (float)get_number(b, "top_p", 1.0, 0, 1);
    s.top_k = (int)get_int(b, "top_k", 0, 0, 1 << 30);  // extension
    s.min_p = (float)get_number(b, "min_p", 0.0, 0, 1);  // extension
    s.repeat_penalty = (float)get_number(b, "repeat_penalty", 1.0, 0.01, 10);  // extension
    s.repeat_last_n = (int)get_int(b, "repeat_last_n", 64, -1, 1 << 30);      // extension
    s.presence_penalty = (float)get_number(b, "presence_penalty", 0, -2, 2);
    s.frequency_penalty = (float)get_number(b, "frequency_penalty", 0, -2, 2);
    if (s.top_p <= 0) {  // top_p 0 keeps only the most likely token
        s.top_p = 1;
        s.temperature = 0;
    }
    if (const json* v = field(b, "seed")) {
        if (!v->is_number_integer()) type_error("seed", "an integer", *v);
        s.seed = v->is_number_unsigned() ? v->get<uint64_t>() : (uint64_t)v->get<int64_t>();
        if (s.seed == 0xFFFFFFFFFFFFFFFFull) s.seed = 0xFFFFFFFFFFFFFFFEull;  // that value means "random" to the sampler
        p.seed_given = true;
    }
    p.n = (int)get_int(b, "n", 1, 1, lim.max_n);
    p.stream = get_bool(b, "stream", false);
    if (const json* so = field(b, "stream_options")) {
        if (!so->is_object()) type_error("stream_options", "an object", *so);
        if (!p.stream)
            throw ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options",
                           "invalid_value");
        p.include_usage = get_bool(*so, "include_usage", false);
    }
    if (const json* st = field(b, "stop")) {
        if (st->is_string()) {
            p.stop.push_back(st->get<std::string>());
        } else if (st->is_array()) {
            if ((int)st->size() > lim.max_stop)
                throw ApiError(400, strprintf("Invalid 'stop': at most %d stop strings are supported, got %zu.", lim.max_stop, st->size()),
                               "stop", "invalid_value");
            for (size_t i = 0; i < st->size(); ++i) {
                if (!(*st)[i].is_string()) type_error(strprintf("stop[%zu]", i), "a string", (*st)[i]);
                p.stop.push_back((*st)[i].get<std::string>());
            }
        } else {
            type_error("stop", "a string or an array of strings", *st);
        }
        for (auto& x : p.stop)
            if (x.empty()) throw ApiError(400, "Invalid 'stop': stop strings must not be empty.", "stop", "invalid_value");
    }
    p.ignore_eos = get_bool(b, "ignore_eos", false);  // extension
    if (const json* rf = field(b, "response_format")) parse_response_format(*rf, p.response_format);
}

void parse_max_tokens(const json& b, GenParams& p) {
    // max_completion_tokens is the newer name; either may be given.
    const json* a = field(b, "max_completion_tokens");
    const json* m = field(b, "max_tokens");
    if (a) p.max_tokens = check_int(*a, "max_completion_tokens", 1, INT64_MAX);
    if (m) {
        int64_t x = check_int(*m, "max_tokens", 1, INT64_MAX);
        if (!a) p.max_tokens = x;
    }
}

std::string content_text(const json& c, const std::string& param) {
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) type_error(param, "a string or an array of content parts", c);
    std::string out;
    for (size_t i = 0; i < c.size(); ++i) {
        const json& part = c[i];
        const std::string pp = strprintf("%s[%zu]", param.c_str(), i);
        if (!part.is_object()) type_error(pp, "an object", part);
        std::string type = get_string(part, "type", "");
        if (type.empty()) throw ApiError(400, strprintf("Missing required parameter: '%s.type'.", pp.c_str()), pp + ".type", "missing_required_parameter");
        if (type != "text")
            throw ApiError(400, strprintf("Invalid '%s.type': content parts of type '%s' are not supported (only 'text').", pp.c_str(), type.c_str()),
                           pp + ".type", "unsupported_value");
        const json* t = field(part, "text");
        if (!t) throw ApiError(400, strprintf("Missing required parameter: '%s.text'.", pp.c_str()), pp + ".text", "missing_required_parameter");
        if (!t->is_string()) type_error(pp + ".text", "a string", *t);
        out += t->get<std::string>();
    }
    return out;
}

}  // namespace

ChatRequest parse_chat_request(const json& b, const RequestLimits& lim) {
    ChatRequest r;
    parse_common(b, r.p, lim);
    parse_max_tokens(b, r.p);
    r.p.logprobs = get_bool(b, "logprobs", false);
    r.p.top_logprobs = (int)get_int(b, "top_logprobs", 0, 0, lim.max_top_logprobs);
    if (field(b, "top_logprobs") && !r.p.logprobs)
        throw ApiError(400, "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is given.",
                       "top_logprobs", "invalid_value");

    auto it = b.find("messages");
    if (it == b.end() || it->is_null())
        throw ApiError(400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
    const json& msgs = *it;
    if (!msgs.is_array()) type_error("messages", "an array", msgs);
    if (msgs.empty())
        throw ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                       "messages", "empty_array");
    static const char* roles[] = {"system", "developer", "user", "assistant", "tool", "function"};
    for (size_t i = 0; i < msgs.size(); ++i) {
        const json& m = msgs[i];
        const std::string pm = strprintf("messages[%zu]", i);
        if (!m.is_object()) type_error(pm, "an object", m);
        ChatMessage cm;
        const json* role = field(m, "role");
        if (!role) throw ApiError(400, strprintf("Missing required parameter: '%s.role'.", pm.c_str()), pm + ".role", "missing_required_parameter");
        if (!role->is_string()) type_error(pm + ".role", "a string", *role);
        cm.role = role->get<std::string>();
        bool known = false;
        for (auto* rr : roles) known |= cm.role == rr;
        if (!known)
            throw ApiError(400,
                           strprintf("Invalid value: '%s'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
                                     cm.role.c_str()),
                           pm + ".role", "invalid_value");
        auto c = m.find("content");
        if (c == m.end() || c->is_null()) {
            if (cm.role != "assistant")
                throw ApiError(400, strprintf("Missing required parameter: '%s.content'.", pm.c_str()), pm + ".content",
                               "missing_required_parameter");
            cm.content_null = true;
        } else {
            cm.content = content_text(*c, pm + ".content");
        }
        if (const json* rc = field(m, "reasoning_content")) {
            if (!rc->is_string()) type_error(pm + ".reasoning_content", "a string", *rc);
            cm.reasoning_content = rc->get<std::string>();
        }
        r.messages.push_back(std::move(cm));
    }
    r.raw_messages = msgs;
    r.add_generation_prompt = get_bool(b, "add_generation_prompt", true);  // extension
    if (const json* k = field(b, "chat_template_kwargs")) {                // extension
        if (!k->is_object()) type_error("chat_template_kwargs", "an object", *k);
        r.template_kwargs = *k;
    }
    return r;
}

CompletionRequest parse_completion_request(const json& b, const RequestLimits& lim) {
    CompletionRequest r;
    parse_common(b, r.p, lim);
    parse_max_tokens(b, r.p);
    if (!field(b, "max_tokens") && !field(b, "max_completion_tokens")) r.p.max_tokens = 16;  // OpenAI's default here
    if (const json* lp = field(b, "logprobs")) {
        if (lp->is_boolean()) {  // accepted for convenience: true means the chosen token only
            r.p.logprobs = lp->get<bool>();
        } else {
            r.p.top_logprobs = (int)check_int(*lp, "logprobs", 0, lim.max_top_logprobs);
            r.p.logprobs = true;
        }
    }
    r.echo = get_bool(b, "echo", false);
    if (const json* sfx = field(b, "suffix")) {
        if (!sfx->is_string()) type_error("suffix", "a string", *sfx);
        if (!sfx->get<std::string>().empty())
            throw ApiError(400, "Invalid 'suffix': insertion with a suffix is not supported.", "suffix", "unsupported_value");
    }
    if (const json* bo = field(b, "best_of")) {
        int64_t x = check_int(*bo, "best_of", 1, lim.max_n);
        if (x != r.p.n)
            throw ApiError(400, "Invalid 'best_of': only best_of equal to n is supported.", "best_of", "unsupported_value");
    }

    auto it = b.find("prompt");
    if (it == b.end() || it->is_null())
        throw ApiError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
    const json& pr = *it;
    auto tokens_of = [&](const json& arr, const std::string& param) {
        PromptInput in;
        in.is_tokens = true;
        for (size_t i = 0; i < arr.size(); ++i) {
            const json& t = arr[i];
            if (!t.is_number_integer()) type_error(strprintf("%s[%zu]", param.c_str(), i), "an integer", t);
            int64_t x = t.get<int64_t>();
            if (x < 0 || (lim.n_vocab > 0 && x >= lim.n_vocab))
                throw ApiError(400, strprintf("Invalid '%s[%zu]': token id %lld is out of range [0, %lld).", param.c_str(), i, (long long)x,
                                              (long long)lim.n_vocab),
                               param, "invalid_value");
            in.tokens.push_back((int32_t)x);
        }
        if (in.tokens.empty())
            throw ApiError(400, strprintf("Invalid '%s': the token list is empty.", param.c_str()), param, "empty_array");
        return in;
    };
    if (pr.is_string()) {
        PromptInput in;
        in.text = pr.get<std::string>();
        r.prompts.push_back(std::move(in));
    } else if (pr.is_array()) {
        if (pr.empty())
            throw ApiError(400, "Invalid 'prompt': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                           "prompt", "empty_array");
        if (pr[0].is_number_integer()) {
            r.prompts.push_back(tokens_of(pr, "prompt"));
        } else {
            if ((int)pr.size() > lim.max_prompts)
                throw ApiError(400, strprintf("Invalid 'prompt': at most %d prompts per request are supported, got %zu.", lim.max_prompts, pr.size()),
                               "prompt", "invalid_value");
            for (size_t i = 0; i < pr.size(); ++i) {
                const std::string pp = strprintf("prompt[%zu]", i);
                if (pr[i].is_string()) {
                    PromptInput in;
                    in.text = pr[i].get<std::string>();
                    r.prompts.push_back(std::move(in));
                } else if (pr[i].is_array()) {
                    r.prompts.push_back(tokens_of(pr[i], pp));
                } else {
                    type_error(pp, "a string or an array of token ids", pr[i]);
                }
            }
        }
    } else {
        type_error("prompt", "a string, an array of strings or an array of token ids", pr);
    }
    if ((int64_t)r.prompts.size() * r.p.n > (int64_t)lim.max_n * lim.max_prompts)
        throw ApiError(400, "Invalid 'n': too many choices for this many prompts.", "n", "invalid_value");
    return r;
}

}  // namespace yiti::server
