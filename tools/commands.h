#pragma once

namespace yiti::cli {
// Each takes the arguments after the command name and returns the process exit code.
int cmd_run(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_template(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_bench_serve(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_devices(int argc, char** argv);
}  // namespace yiti::cli
