// Loading a model for a command: the placement flags, the load, and the start-up line that says
// where the model went (bytes per device) plus any warnings of the loading.
#pragma once
#include <memory>
#include <string>

#include "args.h"
#include "model/model.h"

namespace yiti::cli {

model::LoadOptions load_options(const PlacementFlags& pf);
std::shared_ptr<model::Model> load_model(const std::string& command, const std::string& path, const PlacementFlags& pf);

}  // namespace yiti::cli
