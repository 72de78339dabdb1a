// Tokenizers built from GGUF metadata (tokenizer.ggml.*), matching llama.cpp token for token.
//
// Models: "llama" (SentencePiece: score-driven merges with byte fallback), "gpt2" (byte-level BPE
// with merge ranks and a pre-tokenizer chosen by tokenizer.ggml.pre) and "bert" (WordPiece).
//
//   auto f = gguf::File::open(path);
//   auto tok = Tokenizer::from_gguf(*f);
//   std::vector<int32_t> ids = tok->encode("Hello", /*add_special=*/true, /*parse_special=*/false);
//   std::string text = tok->decode(ids);
//
// All const methods are safe to call from several threads at once.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace yiti {

namespace gguf {
class File;
}

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
    UNDEFINED = 0,
    NORMAL = 1,
    UNKNOWN = 2,
    CONTROL = 3,
    USER_DEFINED = 4,
    UNUSED = 5,
    BYTE = 6,
};

enum class VocabType {
    SPM,  // tokenizer.ggml.model = "llama"
    BPE,  // "gpt2"
    WPM,  // "bert"
};

class Tokenizer {
public:
    // Reads tokenizer.ggml.* from a GGUF file. Throws yiti::Error when the vocabulary cannot be
    // used: no tokenizer.ggml.model or tokens, an unsupported model, arrays whose lengths do not
    // match the token list, or merges (gpt2) missing. Recoverable problems fall back and are
    // recorded in warnings(): an unknown or missing tokenizer.ggml.pre uses "default", special
    // token ids out of range keep their defaults, malformed merges are skipped.
    static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& f);
    ~Tokenizer();

    // Text to token ids. add_special: add BOS/EOS as the vocabulary says (tokenizer.ggml.add_bos_token /
    // add_eos_token, with llama.cpp's per-model defaults; BERT adds [CLS] ... [SEP]).
    // parse_special: recognise control tokens written in the text (e.g. "<|im_start|>").
    // User-defined tokens (type 4) are recognised either way, as in llama.cpp. Any byte string
    // is accepted, invalid UTF-8 included.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes token `id` stands for: SentencePiece "▁" becomes a space and <0xNN> the byte;
    // byte-level BPE text is mapped back to bytes. Control and unknown tokens give "" unless
    // `special`; unused tokens always give "". An id out of range gives "".
    std::string token_to_piece(int32_t id, bool special = false) const;

    // Token ids to text as llama_detokenize(remove_special = false, unparse_special = special) does:
    // the leading space that add_space_prefix put in front of the first token is removed, and
    // vocabularies that ask for it get llama.cpp's clean-up of tokenization spaces (" ," -> ",").
    // The result is raw bytes and may be invalid UTF-8 when the ids split a character.
    std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

    int32_t n_vocab() const;
    VocabType type() const;
    const std::string& model_name() const;  // tokenizer.ggml.model
    const std::string& pre_name() const;    // the pre-tokenizer in use ("default" after a fallback)

    // Special ids, -1 when absent.
    int32_t bos() const;
    int32_t eos() const;
    int32_t eot() const;
    int32_t eom() const;
    int32_t unk() const;
    int32_t pad() const;
    int32_t sep() const;
    int32_t nl() const;  // the newline token
    int32_t fim_pre() const;
    int32_t fim_suf() const;
    int32_t fim_mid() const;

    // End of generation: eos, eot, eom and the tokens llama.cpp recognises by text
    // (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end|>, <end_of_turn>, <EOT>, <|eom_id|>, and FIM
    // pad/repo/file-separator tokens).
    bool is_eog(int32_t id) const;
    const std::vector<int32_t>& eog_ids() const;

    bool add_bos() const;
    bool add_eos() const;
    bool add_space_prefix() const;
    bool clean_spaces() const;

    const std::string& token_text(int32_t id) const;  // the raw vocabulary entry; "" out of range
    TokenType token_type(int32_t id) const;           // UNDEFINED out of range
    float token_score(int32_t id) const;
    bool is_control(int32_t id) const;  // CONTROL type (incl. EOG tokens promoted as llama.cpp does)
    bool is_byte(int32_t id) const;
    int32_t find_token(std::string_view text) const;  // exact vocabulary entry, -1 when absent

    // Messages about metadata that was ignored or replaced by a fallback while loading.
    const std::vector<std::string>& warnings() const;

    struct Impl;

private:
    Tokenizer();
    std::unique_ptr<Impl> impl_;
};

// Turns a stream of token ids into text that is always whole UTF-8 characters: bytes of a
// character split across tokens (SentencePiece byte fallback, byte-level BPE) are held back until
// the character is complete. Invalid bytes become U+FFFD. The first token loses the leading space
// of add_space_prefix, as in Tokenizer::decode(). Like llama.cpp's streaming output, it does not
// apply decode()'s clean-up of tokenization spaces.
class StreamDecoder {
public:
    // continuation: the tokens continue text that is already there (a prompt the output follows):
    // the first token keeps its leading space. Otherwise the first token starts the text, and
    // a SentencePiece model's prefix space is dropped from it.
    explicit StreamDecoder(const Tokenizer& tok, bool special = false, bool continuation = false);
    // The text that became complete with this token (possibly "").
    std::string push(int32_t id);
    // Whatever is still held back, with incomplete sequences replaced by U+FFFD. Call it at the
    // end of a sequence; the decoder can then be reused for more tokens of the same sequence.
    std::string flush();
    // Start over as for a new sequence (the next token counts as the first one again).
    void reset();

private:
    const Tokenizer& tok_;
    bool special_;
    bool first_ = true;
    std::string pending_;
};

}  // namespace yiti
