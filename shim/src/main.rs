//! containerd-shim-crossarch-v2: the shim binary containerd starts for the runtime
//! `io.containerd.crossarch.v2`.

mod binfmt;
mod cli;
mod containerd_config;
mod doctor;
mod facts;
mod host;
mod idmap;
mod info;
mod init;
mod install_config;
mod logger;
mod ns;
mod plan;
mod prepare;
mod private_binfmt;
mod reaper;
mod route;
mod runc;
mod service;
mod spec;
mod staging;
mod sys;
mod task;
mod view;

// Shared with the library target, so `crate::config` and friends keep naming them.
use crossarch_shim::{bootstrap, caps, config, error, inspect};

use containerd_shim::Config;

fn print_version() {
    println!("containerd-shim-crossarch-v2:");
    println!("  Version:  {}", env!("CARGO_PKG_VERSION"));
    println!(
        "  Revision: {}",
        option_env!("CROSSARCH_REVISION").unwrap_or("unknown")
    );
    println!("  Runtime:  {}", logger::RUNTIME);
}

/// What containerd wrote on stdin (for the start action and -info), read before anything else opens a file
/// (std has already put /dev/null on a closed stdin). A terminal is not read: someone typing
/// the command by hand has nothing to send, and reading would wait for them.
fn start_input() -> Vec<u8> {
    // SAFETY: isatty only looks at the descriptor.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
        return Vec::new();
    }
    bootstrap::read_input(std::io::stdin().lock())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args) {
        cli::Command::Help => {
            doctor::out(cli::HELP);
            return;
        }
        cli::Command::Version => {
            print_version();
            return;
        }
        cli::Command::Info => std::process::exit(info::main(&start_input())),
        cli::Command::Doctor => std::process::exit(doctor::main(&args[1..])),
        cli::Command::InstallConfig => std::process::exit(install_config::main(&args[1..])),
        cli::Command::Usage(line) => {
            eprintln!("{line}");
            std::process::exit(2);
        }
        cli::Command::Shim(cli::Action::Start) => service::set_start_input(start_input()),
        cli::Command::Shim(_) => {}
    }
    // The blocking pool serves the reads of a container's files at Create and Exec; its
    // threads end a second after their last use, so that an idle shim is one thread.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("containerd-shim-crossarch-v2: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let config = Config {
        no_setup_logger: true,
        no_reaper: true,
        ..Default::default()
    };
    runtime.block_on(containerd_shim::asynchronous::run::<service::Service>(
        logger::RUNTIME,
        Some(config),
    ));
}
