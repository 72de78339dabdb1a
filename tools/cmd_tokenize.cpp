// yiti tokenize: the token ids (or pieces) of a text under a model's tokenizer.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace yiti::cli {

int cmd_tokenize(int argc, char** argv) {
    std::string path;
    bool no_bos = false, special = false, ids_only = false;
    std::vector<std::string> text;
    Args a("tokenize", "-m MODEL [--no-bos] [--special] [--ids] TEXT");
    a.str("-m,--model", &path, "GGUF model (or vocabulary-only) file", "FILE");
    a.flag("--no-bos", &no_bos, "do not add BOS/EOS (default: as the model's metadata says)");
    a.flag("--special", &special, "recognize special tokens written in the text (default: plain text)");
    a.flag("--ids", &ids_only, "print only the ids, space-separated");
    a.positional(&text, "TEXT");
    a.examples("  yiti tokenize -m model.gguf --ids \"Hello world\"\n"
               "  yiti tokenize -m model.gguf --special \"<|im_start|>user\"\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (path.empty()) throw Error("missing -m MODEL");
    if (text.size() != 1) throw Error("give exactly one TEXT argument (quote it)");
    auto f = gguf::File::open(path);
    auto tok = Tokenizer::from_gguf(*f);
    std::vector<int32_t> ids = tok->encode(text[0], !no_bos, special);
    if (ids_only) {
        for (size_t i = 0; i < ids.size(); ++i) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    } else {
        for (int32_t id : ids) {
            std::string piece = tok->token_to_piece(id, true);
            printf("%6d '%s'\n", id, piece.c_str());
        }
    }
    return 0;
}

}  // namespace yiti::cli
