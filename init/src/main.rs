//! crossarch-init: the tiny init crossarch puts in front of every container's program.
//!
//! qemu-user must never be PID 1: it re-raises fatal signals on itself with SIG_DFL and the
//! kernel drops those for PID 1, so an untrapped SIGTERM would freeze the container. This init
//! takes PID 1 instead: it forwards signals, reaps zombies and exits with the program's status.

mod cli;
mod exit;
mod signals;
mod supervise;
mod trace;

use std::io::Write;

/// Writes one `crossarch-init: ` line to stderr in a single write, so it does not interleave
/// with the program's output. A closed stderr must never take init down, so errors are dropped.
macro_rules! complain {
    ($($arg:tt)*) => {
        $crate::write_line(&mut ::std::io::stderr(), &format!("crossarch-init: {}", format_args!($($arg)*)))
    };
}
pub(crate) use complain;

pub(crate) fn write_line(out: &mut impl Write, line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = out.write_all(buf.as_bytes());
}

/// Exit code for a command line init cannot make sense of.
const USAGE_EXIT: i32 = 2;

fn main() {
    let code = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli::Command::Run(options)) => supervise::run(&options),
        Ok(cli::Command::Exec {
            qemu_dir,
            script,
            args,
        }) => trace::handover::run(&qemu_dir, &script, &args),
        Ok(cli::Command::Version) => {
            write_line(
                &mut std::io::stdout(),
                concat!("crossarch-init ", env!("CARGO_PKG_VERSION")),
            );
            0
        }
        Ok(cli::Command::Help) => {
            write_line(&mut std::io::stdout(), cli::USAGE);
            0
        }
        Err(err) => {
            complain!("{err}");
            write_line(&mut std::io::stderr(), cli::USAGE);
            USAGE_EXIT
        }
    };
    std::process::exit(code)
}
