// run_folder: creates DIR/YYYYMMDD_HHMMSS[_N]/ and its logs/ folder.
#pragma once

#include <caf/expected.hpp>
#include <caf/timestamp.hpp>

#include <cstdint>
#include <string>

namespace troupe {

/// Creates `output_dir` (with parents) and in it a new folder named after
/// `now` in UTC; when that name is taken, `_1`, `_2`, ... is appended.
/// Returns the absolute path of the new folder, which has a `logs/` folder.
caf::expected<std::string> create_run_folder(const std::string& output_dir,
                                             caf::timestamp now);

/// mkdir -p; errc::os_error names the part that failed.
caf::error make_directories(const std::string& path);

/// The bytes of the file at `path` from `offset` to its end ("" when it does
/// not exist or is shorter): a log read while its stage may still write it.
std::string read_from(const std::string& path, int64_t offset);

} // namespace troupe
