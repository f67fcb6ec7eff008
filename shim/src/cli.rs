//! The shim's command line: what containerd passes (handed to the `containerd-shim` crate
//! untouched), crossarch's own commands, and `--help`. A flag neither crossarch nor the crate
//! knows gets one line naming it instead of the crate's
//! `InvalidArgument("flag provided but not defined: -help")`.

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    /// `-info`: the runtime's info for containerd 2.x (see `info`).
    Info,
    Doctor,
    InstallConfig,
    /// containerd's call (start, delete, or serving): the `containerd-shim` crate parses it.
    Shim(Action),
    /// A usage error, as one line.
    Usage(String),
}

/// The flags the `containerd-shim` 0.11 crate parses (`args::parse`, with Go's flag rules),
/// and whether each takes a value. containerd 1.6, 1.7 and 2.x pass subsets of these.
const SHIM_FLAGS: &[(&str, bool)] = &[
    ("debug", false),
    ("v", false),
    ("version", false),
    ("namespace", true),
    ("id", true),
    ("socket", true),
    ("bundle", true),
    ("address", true),
    ("publish-binary", true),
    ("info", false),
];

/// What containerd runs the shim for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No action: serve the Task API.
    Serve,
    Start,
    Delete,
}

/// The actions containerd runs the shim with; none means serving.
const SHIM_ACTIONS: &[&str] = &["start", "delete"];

/// Decides what `args` (without the program name) ask for, as the crate would read them:
/// flags (`-name`, `--name`, `-name=value`, `-name value`) up to the first argument that is
/// not one, or `--`; that argument is the action.
pub fn parse(args: &[String]) -> Command {
    match args.first().map(String::as_str) {
        Some("help") => return Command::Help,
        Some("doctor") => return Command::Doctor,
        Some("install-config") => return Command::InstallConfig,
        _ => {}
    }
    let mut rest = args.iter();
    let mut version = false;
    let mut info = false;
    let mut action = Action::Serve;
    while let Some(arg) = rest.next() {
        if arg == "--" {
            // The crate, as Go's flag package, takes the argument after `--` as the action.
            action = match rest.next().map(String::as_str) {
                Some("start") => Action::Start,
                Some("delete") => Action::Delete,
                _ => Action::Serve,
            };
            break;
        }
        let Some(flag) = flag_name(arg) else {
            if arg.len() >= 2 && arg.starts_with('-') {
                return usage(format!("malformed flag {arg}"));
            }
            if !SHIM_ACTIONS.contains(&arg.as_str()) {
                return usage(format!("unknown command {arg:?}"));
            }
            action = if arg == "start" {
                Action::Start
            } else {
                Action::Delete
            };
            break;
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((n, _)) => (n, true),
            None => (flag, false),
        };
        if matches!(name, "h" | "help") {
            return Command::Help;
        }
        match SHIM_FLAGS.iter().find(|(n, _)| *n == name) {
            None => return usage(format!("unknown flag {arg}")),
            Some((_, true)) if !inline_value && rest.next().is_none() => {
                return usage(format!("flag -{name} needs a value"))
            }
            Some(_) => {
                version |= matches!(name, "v" | "version");
                info |= name == "info";
            }
        }
    }
    if version {
        Command::Version
    } else if info {
        Command::Info
    } else {
        Command::Shim(action)
    }
}

/// The name of flag `arg` with any `=value`, or `None` when `arg` is not a well-formed flag
/// (Go's flag package: one or two dashes, then a name that starts with neither `-` nor `=`).
fn flag_name(arg: &str) -> Option<&str> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return None;
    }
    let name = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    (!name.is_empty() && !name.starts_with(['-', '='])).then_some(name)
}

fn usage(what: String) -> Command {
    Command::Usage(format!(
        "containerd-shim-crossarch-v2: {what}; see containerd-shim-crossarch-v2 --help"
    ))
}

pub const HELP: &str = "\
containerd-shim-crossarch-v2: the containerd runtime io.containerd.crossarch.v2, which runs
foreign-architecture containers through qemu-user, with an injected init and a capability
ceiling.

Usage:
  containerd-shim-crossarch-v2 [FLAGS] [start | delete]   as containerd runs it
  containerd-shim-crossarch-v2 COMMAND [ARGS]

Commands:
  doctor           whether this node is ready for crossarch, and the fix for what is not
                   (doctor --help)
  install-config   add the crossarch runtime handler to containerd's config
  --version, -v    print the version
  --help, -h, help print this help

Called by containerd:
  start            start (or reuse) the shim for a container and print its socket address
                   (a BootstrapResult when containerd 2.3 sends BootstrapParams on stdin)
  delete           clean up after a shim that is gone (-bundle, -id)
  (no action)      serve the Task API on -socket for one container or pod

Flags containerd passes (Go style: -flag value, -flag=value, or --flag):
  -namespace NS         containerd namespace that owns the shim
  -id ID                id of the container (task) the shim is started for
  -address ADDR         containerd's gRPC socket, for events and the shim's own socket name
  -publish-binary PATH  the containerd binary, which publishes the shim's events
  -bundle DIR           the task's bundle directory (delete)
  -socket ADDR          the socket to serve (when the shim re-runs itself to serve)
  -debug                log at debug level
  -info                 print the runtime info (protobuf) on stdout and exit

Environment:
  CROSSARCH_CONFIG      the node's crossarch config file (default /etc/crossarch/config.toml)
  CROSSARCH_LOG_LEVEL   level of the shim's lines in containerd's log: off, error, warn,
                        info (the default; debug with -debug), debug, trace

Exit codes:
  0  success (doctor: the node is ready, perhaps with warnings)
  1  failure (doctor: something would make containers fail)
  2  usage error: an unknown command or flag
";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Command {
        parse(
            &args
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn what_containerd_passes_goes_to_the_crate() {
        for args in [
            // containerd 1.6 and 1.7: start, delete, and the serving shim.
            "-namespace default -address /run/containerd/containerd.sock \
             -publish-binary /usr/bin/containerd -id web start",
            "-namespace k8s.io -address /run/c.sock -publish-binary /usr/bin/containerd \
             -id web -bundle /run/b delete",
            "-namespace default -id web -address /run/c.sock -socket unix:///run/s.sock -debug",
            // containerd 2.x: -debug=true style values, --flags, -info.
            "--namespace=default --address=/run/c.sock -id web -debug=true start",
            "",
            "-id web -- start",
        ] {
            assert!(matches!(parse_str(args), Command::Shim(_)), "{args}");
        }
        assert_eq!(
            parse_str("-namespace default -id web start"),
            Command::Shim(Action::Start)
        );
        assert_eq!(
            parse_str("-id web -bundle /b delete"),
            Command::Shim(Action::Delete)
        );
        assert_eq!(parse_str("-id web -- start"), Command::Shim(Action::Start));
        // containerd 2.x asks every runtime for its info.
        assert_eq!(parse_str("-info"), Command::Info);
        assert_eq!(
            parse_str("-namespace k8s.io -address /run/c.sock -info"),
            Command::Info
        );
        assert_eq!(
            parse_str("-namespace default -id web -socket unix:///s"),
            Command::Shim(Action::Serve)
        );
    }

    #[test]
    fn help_and_version_come_first() {
        for args in ["--help", "-h", "help", "-help", "-id web --help start"] {
            assert_eq!(parse_str(args), Command::Help, "{args}");
        }
        for args in ["--version", "-v", "-version", "-id x -v"] {
            assert_eq!(parse_str(args), Command::Version, "{args}");
        }
        assert_eq!(parse_str("doctor --json"), Command::Doctor);
        assert!(HELP.contains("doctor") && HELP.contains("install-config"));
    }

    #[test]
    fn an_unknown_flag_is_one_line_naming_it() {
        let Command::Usage(line) = parse_str("-namespace default --frobnicate start") else {
            panic!("accepted");
        };
        assert_eq!(
            line,
            "containerd-shim-crossarch-v2: unknown flag --frobnicate; see \
             containerd-shim-crossarch-v2 --help"
        );
        assert!(!line.contains('\n'));
        for (args, what) in [
            ("-id", "flag -id needs a value"),
            ("---x", "malformed flag ---x"),
            ("frobnicate", "unknown command \"frobnicate\""),
        ] {
            assert!(
                matches!(parse_str(args), Command::Usage(l) if l.contains(what)),
                "{args}"
            );
        }
    }
}
