// The shared CLI11 conventions: help layout, error texts, exit code.
#include "agent/common/cli.h"

#include <algorithm>
#include <ostream>

#include <fmt/format.h>

namespace cilium::cli {

std::string Formatter::make_option_name(const CLI::Option* opt, bool is_positional) const {
  if (is_positional) return opt->get_name(true, false);
  std::vector<std::string> names;
  for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
  for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  std::string type = opt->get_type_name();
  // "--name=TYPE" for options that take a value (and for flags whose type is shown, "bool").
  if (!type.empty() && !names.empty() && names.front().rfind("--", 0) == 0)
    names.front() += "=" + type;
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string Formatter::make_option_opts(const CLI::Option*) const { return {}; }

std::string Formatter::make_option_desc(const CLI::Option* opt) const {
  std::string d = opt->get_description();
  if (!opt->get_default_str().empty()) d += " [default " + opt->get_default_str() + "]";
  if (!opt->get_lnames().empty())
    if (auto it = env_.find(opt->get_lnames().front()); it != env_.end())
      d += " [env " + it->second + "]";
  if (opt->get_required()) d += " (required)";
  return d;
}

// Name on its own line, description indented below: long option names stay readable.
std::string Formatter::make_option(const CLI::Option* opt, bool is_positional) const {
  std::string desc = make_option_desc(opt);
  return fmt::format("  {}\n{}", make_option_name(opt, is_positional),
                     desc.empty() ? std::string() : "      " + desc + "\n");
}

std::string Formatter::make_help(const CLI::App* app, std::string name,
                                 CLI::AppFormatMode mode) const {
  if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
  std::string out = make_usage(app, name);
  std::string desc = make_description(app);
  if (!desc.empty()) out += "\n" + desc;
  out += make_positionals(app);
  out += make_groups(app, mode);
  out += make_subcommands(app, mode);
  std::string footer = make_footer(app);
  if (!footer.empty()) out += "\n" + footer;
  return out;
}

std::unique_ptr<CLI::App> makeApp(const std::string& description, const std::string& name) {
  auto app = std::make_unique<CLI::App>(description, name);
  app->formatter(std::make_shared<Formatter>());
  app->allow_extras();
  app->set_help_flag("-h,--help", "Show this help and exit");
  app->get_formatter()->label("REQUIRED", "(required)");
  return app;
}

Formatter& formatterOf(CLI::App& app) {
  return *static_cast<Formatter*>(app.get_formatter().get());
}

namespace {

// The first unknown argument of `app` or of a subcommand that ran.
std::vector<std::string> extras(const CLI::App& app) {
  std::vector<std::string> out = app.remaining();
  for (const CLI::App* sub : app.get_subcommands()) {
    auto more = extras(*sub);
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

std::string optionOf(const std::string& what) {
  // CLI11 messages start with the option's name: "--last: 1 required INT missing".
  auto colon = what.find(':');
  return colon == std::string::npos ? std::string() : what.substr(0, colon);
}

}  // namespace

Result<Outcome> parse(CLI::App& app, const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "-h" || a == "--help") {
      // Still parse, so that help() shows the subcommand the user named; errors do not matter.
      try {
        std::vector<std::string> rev(args.rbegin(), args.rend());
        app.parse(rev);
      } catch (const CLI::Error&) {
      }
      return Outcome::kHelp;
    }
  try {
    std::vector<std::string> rev(args.rbegin(), args.rend());  // CLI11 pops from the back
    app.parse(rev);
  } catch (const CLI::CallForHelp&) {
    return Outcome::kHelp;
  } catch (const CLI::ArgumentMismatch& e) {
    std::string opt = optionOf(e.what());
    if (!opt.empty() && std::string_view(e.what()).find("missing") != std::string_view::npos)
      return makeError(ErrorCode::kInvalidArgument, "{}: needs a value", opt);
    return makeError(ErrorCode::kInvalidArgument, "{}", e.what());
  } catch (const CLI::ParseError& e) {
    return makeError(ErrorCode::kInvalidArgument, "{}", e.what());
  }
  auto unknown = extras(app);
  if (!unknown.empty()) {
    const std::string& a = unknown.front();
    if (a.size() > 1 && a[0] == '-')
      return makeError(ErrorCode::kInvalidArgument, "unknown flag {}", a.substr(0, a.find('=')));
    return makeError(ErrorCode::kInvalidArgument, "unexpected argument '{}'", a);
  }
  return Outcome::kRun;
}

std::string help(const CLI::App& app) {
  const CLI::App* shown = &app;
  std::string prefix;  // "cilium-dbg policy": the usage line names the whole command
  while (true) {
    auto subs = shown->get_subcommands();
    if (subs.empty()) break;
    prefix += (prefix.empty() ? "" : " ") + shown->get_name();
    shown = subs.front();
  }
  return shown->help(prefix);
}

int usageError(std::ostream& err, std::string_view prog, std::string_view message) {
  err << prog << ": " << message << "\n";
  return kUsageExit;
}

}  // namespace cilium::cli
