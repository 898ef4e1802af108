// The text a script prints for list_exports and default_export, per nbdkit-sh-plugin(3).
// The first line may name the format:
//   NAMES               one export name per line (also assumed when the first line is
//                       none of these three)
//   INTERLEAVED         name line, description line, name line, ...
//   NAMES+DESCRIPTIONS  the first half of the lines are names, the second half their
//                       descriptions, in the same order
// An empty line is the name "" (as in nbdkit). Pure functions, for the plugin and tests.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace nbdd::plugin::sh {

struct ListedExport {
  std::string name;
  std::string description;
};

std::vector<ListedExport> parse_export_list(std::string_view text);

// default_export: the first name of such a list, "" when it names none.
std::string first_listed_name(std::string_view text);

}  // namespace nbdd::plugin::sh
