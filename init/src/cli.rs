//! The command line. Hand-written to stay tiny; options never come from the environment,
//! because the environment belongs to the program.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::exit::RemapTable;

pub const USAGE: &str = "\
usage: crossarch-init [OPTIONS] [--] PROGRAM [ARGS...]
  -g, --pgroup              forward signals to the program's whole process group
  -s, --subreaper           become a child subreaper even as PID 1 (automatic otherwise)
      --remap-exit FROM:TO  exit with TO instead of FROM; a signal n counts as 128+n (repeatable)
      --trace DIR           run every foreign program of the tree through the qemu-<arch>-static
                            in DIR, catching each exec with a seccomp listener (trace mode)
      --version             print the version and exit";

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Options),
    /// `--exec=DIR SCRIPT ARGS...`: init started by the kernel from a handed-over exec's `#!`
    /// line in trace mode (see `trace::handover`); never for a user to type.
    Exec {
        qemu_dir: PathBuf,
        script: OsString,
        args: Vec<OsString>,
    },
    Version,
    Help,
}

#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub pgroup: bool,
    pub subreaper: bool,
    pub remap: RemapTable,
    /// Trace mode's qemu directory.
    pub trace: Option<PathBuf>,
    /// PROGRAM followed by its arguments, never empty.
    pub program: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
pub enum UsageError {
    UnknownOption(String),
    MissingRemapValue,
    MissingTraceDir,
    BadRemap(String),
    DuplicateRemap(u8),
    NoProgram,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption(opt) => write!(f, "unknown option {opt}"),
            Self::MissingRemapValue => write!(f, "--remap-exit needs a FROM:TO value"),
            Self::MissingTraceDir => write!(f, "--trace needs the directory of the qemus"),
            Self::BadRemap(value) => write!(
                f,
                "--remap-exit takes FROM:TO with exit codes 0-255, got {value:?}"
            ),
            Self::DuplicateRemap(from) => {
                write!(
                    f,
                    "--remap-exit gives exit code {from} more than one target"
                )
            }
            Self::NoProgram => write!(f, "no PROGRAM to run"),
        }
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().peekable();
    // The kernel puts a `#!` line's argument first, and the rest are the program's.
    if let Some(dir) = args
        .peek()
        .and_then(|a| a.to_str())
        .and_then(|a| a.strip_prefix("--exec="))
    {
        let qemu_dir = PathBuf::from(dir);
        args.next();
        let script = args.next().ok_or(UsageError::NoProgram)?;
        return Ok(Command::Exec {
            qemu_dir,
            script,
            args: args.collect(),
        });
    }
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        // A name that is not UTF-8 cannot be one of our options: it starts the program.
        let Some(text) = arg.to_str() else {
            options.program.push(arg);
            break;
        };
        match text {
            "--" => break,
            "-g" | "--pgroup" => options.pgroup = true,
            "-s" | "--subreaper" => options.subreaper = true,
            "--version" => return Ok(Command::Version),
            "-h" | "--help" => return Ok(Command::Help),
            "--trace" => {
                let dir = args.next().ok_or(UsageError::MissingTraceDir)?;
                options.trace = Some(dir.into());
            }
            "--remap-exit" => {
                let value = args.next().ok_or(UsageError::MissingRemapValue)?;
                add_remap(&mut options.remap, &value.to_string_lossy())?;
            }
            _ => {
                if let Some(value) = text.strip_prefix("--remap-exit=") {
                    add_remap(&mut options.remap, value)?;
                } else if let Some(dir) = text.strip_prefix("--trace=") {
                    options.trace = Some(dir.into());
                } else if text.starts_with("--") {
                    return Err(UsageError::UnknownOption(text.to_owned()));
                } else if let Some(flags) = text.strip_prefix('-').filter(|f| !f.is_empty()) {
                    for flag in flags.chars() {
                        match flag {
                            'g' => options.pgroup = true,
                            's' => options.subreaper = true,
                            other => return Err(UsageError::UnknownOption(format!("-{other}"))),
                        }
                    }
                } else {
                    options.program.push(arg);
                    break;
                }
            }
        }
    }
    options.program.extend(args);
    if options.program.is_empty() {
        return Err(UsageError::NoProgram);
    }
    Ok(Command::Run(options))
}

fn add_remap(table: &mut RemapTable, value: &str) -> Result<(), UsageError> {
    let bad = || UsageError::BadRemap(value.to_owned());
    let (from, to) = value.split_once(':').ok_or_else(bad)?;
    let from: u8 = from.parse().map_err(|_| bad())?;
    let to: u8 = to.parse().map_err(|_| bad())?;
    if table.insert(from, to) {
        Ok(())
    } else {
        Err(UsageError::DuplicateRemap(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> Options {
        match parse_strs(args) {
            Ok(Command::Run(options)) => options,
            other => panic!("{args:?} parsed to {other:?}"),
        }
    }

    fn program(options: &Options) -> Vec<&str> {
        options
            .program
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect()
    }

    #[test]
    fn everything_after_double_dash_is_the_program() {
        let options = run(&["--", "sh", "-c", "exit 3", "-g", "--version", "--"]);
        assert_eq!(
            program(&options),
            ["sh", "-c", "exit 3", "-g", "--version", "--"]
        );
        assert!(!options.pgroup);
    }

    #[test]
    fn first_non_option_starts_the_program() {
        let options = run(&["-g", "sleep", "-s", "10"]);
        assert_eq!(program(&options), ["sleep", "-s", "10"]);
        assert!(options.pgroup);
        assert!(!options.subreaper);
    }

    #[test]
    fn short_and_long_flags() {
        let options = run(&["-gs", "--", "x"]);
        assert!(options.pgroup && options.subreaper);
        let options = run(&["--pgroup", "--subreaper", "--", "x"]);
        assert!(options.pgroup && options.subreaper);
        let options = run(&["-s", "x"]);
        assert!(!options.pgroup && options.subreaper);
    }

    #[test]
    fn remap_in_both_spellings() {
        let options = run(&["--remap-exit", "143:0", "--remap-exit=1:2", "--", "x"]);
        assert_eq!(options.remap.apply(143), 0);
        assert_eq!(options.remap.apply(1), 2);
        assert_eq!(options.remap.apply(2), 2);
    }

    #[test]
    fn bad_remaps_are_refused() {
        for value in [
            "", "1", "1:", ":1", "256:0", "0:256", "-1:0", "a:b", "1:2:3",
        ] {
            assert_eq!(
                parse_strs(&["--remap-exit", value, "--", "x"]),
                Err(UsageError::BadRemap(value.to_owned())),
                "{value:?}"
            );
        }
        assert_eq!(
            parse_strs(&["--remap-exit"]),
            Err(UsageError::MissingRemapValue)
        );
        assert_eq!(
            parse_strs(&["--remap-exit", "1:0", "--remap-exit", "1:3", "x"]),
            Err(UsageError::DuplicateRemap(1))
        );
    }

    #[test]
    fn unknown_options_are_refused() {
        assert_eq!(
            parse_strs(&["--frobnicate", "x"]),
            Err(UsageError::UnknownOption("--frobnicate".into()))
        );
        assert_eq!(
            parse_strs(&["-gx", "x"]),
            Err(UsageError::UnknownOption("-x".into()))
        );
    }

    #[test]
    fn trace_takes_a_directory() {
        let options = run(&["--trace", "/dev/.crossarch", "-g", "--", "sh"]);
        assert_eq!(options.trace, Some(PathBuf::from("/dev/.crossarch")));
        assert!(options.pgroup);
        assert_eq!(run(&["--trace=/q", "sh"]).trace, Some(PathBuf::from("/q")));
        assert_eq!(run(&["sh"]).trace, None);
        assert_eq!(parse_strs(&["--trace"]), Err(UsageError::MissingTraceDir));
    }

    #[test]
    fn a_program_is_required() {
        assert_eq!(parse_strs(&[]), Err(UsageError::NoProgram));
        assert_eq!(parse_strs(&["-g", "--"]), Err(UsageError::NoProgram));
    }

    #[test]
    fn version_and_help() {
        assert_eq!(parse_strs(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_strs(&["-g", "--help"]), Ok(Command::Help));
        // After `--` they belong to the program.
        assert_eq!(program(&run(&["--", "--version"])), ["--version"]);
    }

    #[test]
    fn a_handed_over_exec_keeps_every_argument() {
        assert_eq!(
            parse_strs(&["--exec=/dev/.crossarch", "/dev/fd/5", "-g", "--", "x"]),
            Ok(Command::Exec {
                qemu_dir: PathBuf::from("/dev/.crossarch"),
                script: "/dev/fd/5".into(),
                args: vec!["-g".into(), "--".into(), "x".into()],
            })
        );
        assert_eq!(parse_strs(&["--exec=/d"]), Err(UsageError::NoProgram));
        // Only first: elsewhere it is an unknown option.
        assert_eq!(
            parse_strs(&["-g", "--exec=/d", "x"]),
            Err(UsageError::UnknownOption("--exec=/d".into()))
        );
    }

    #[test]
    fn lone_dash_is_a_program_name() {
        assert_eq!(program(&run(&["-"])), ["-"]);
    }

    #[test]
    fn non_utf8_program_is_passed_through() {
        use std::os::unix::ffi::OsStringExt;
        let name = OsString::from_vec(vec![b'-', 0xff]);
        match parse([name.clone()]) {
            Ok(Command::Run(options)) => assert_eq!(options.program, [name]),
            other => panic!("{other:?}"),
        }
    }
}
