// Command lines on CLI11, the same way in every binary (cilium-agent, cilium-dbg, hubble,
// cilium-cni): one help layout, one error style, one exit code for usage errors.
//
//   help:   "Usage: <prog> [OPTIONS] ..." then the options, one per entry:
//             --name=TYPE, -n            description [default X] [env VAR]
//   errors: kInvalidArgument "unknown flag --x", "unexpected argument 'x'",
//           "--x: needs a value", or the option's own message; main prints one line,
//           "<prog>: <message>", to stderr and exits kUsageExit (2).
// Environment variables are read by the callers through their injected getenv (testable),
// never by CLI11 itself; the help lists them with Formatter::env().
#pragma once

#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "agent/common/error.h"

namespace cilium::cli {

// Exit status of a usage error in every binary.
inline constexpr int kUsageExit = 2;

class Formatter : public CLI::Formatter {
 public:
  // Shows "[env VAR]" after the option whose long name is `lname` ("server").
  void env(const std::string& lname, std::string var) { env_[lname] = std::move(var); }
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override;
  std::string make_option_opts(const CLI::Option* opt) const override;
  std::string make_option_desc(const CLI::Option* opt) const override;
  std::string make_option(const CLI::Option* opt, bool is_positional) const override;
  // Usage first, then the description, options and subcommands.
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override;

 private:
  std::map<std::string, std::string> env_;
};

// An App with the shared formatter, -h/--help, and unknown arguments collected (parse() turns
// them into errors) rather than thrown.
std::unique_ptr<CLI::App> makeApp(const std::string& description, const std::string& name);
// The formatter makeApp installed, for env().
Formatter& formatterOf(CLI::App& app);

enum class Outcome { kRun, kHelp };
// Parses `args` (argv without the program name). --help anywhere is kHelp; errors are
// kInvalidArgument with the texts above. `app` can be inspected afterwards.
Result<Outcome> parse(CLI::App& app, const std::vector<std::string>& args);

// The help text of `app` (or of the subcommand the user named when `app` was parsed).
std::string help(const CLI::App& app);

// Prints a usage error as every binary does and returns kUsageExit.
int usageError(std::ostream& err, std::string_view prog, std::string_view message);

}  // namespace cilium::cli
