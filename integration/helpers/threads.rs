//! A multi-threaded foreign program for the trace-mode tests, built for aarch64 by
//! integration/build.rs: four threads run at once; two of them start a child (a fork and an
//! exec from a thread of a multi-threaded process) while the other two compute. Then a thread
//! that is not the main one execs `SH -c ...` while another thread still runs: the kernel
//! ends the other threads and the exec'ing one takes the process's pid, which the new shell
//! checks.
//!
//!   threads SH
//!
//! Prints `child-<i> <uname -m>` or `spin-<i> done` per thread in order, then the shell's
//! `exec-from-thread <pid>` and `uname -m`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

fn main() {
    let sh = std::env::args().nth(1).expect("usage: threads SH");
    let start = Arc::new(Barrier::new(4));
    let workers: Vec<_> = (0..4u64)
        .map(|i| {
            let (start, sh) = (start.clone(), sh.clone());
            thread::spawn(move || {
                start.wait();
                if i % 2 == 0 {
                    let out = Command::new(&sh)
                        .args(["-c", "uname -m"])
                        .output()
                        .expect("spawn a child from a thread");
                    format!("child-{i} {}", String::from_utf8_lossy(&out.stdout).trim())
                } else {
                    let mut x = i;
                    for k in 0..2_000_000u64 {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005) ^ k);
                    }
                    format!("spin-{i} done")
                }
            })
        })
        .collect();
    for worker in workers {
        println!("{}", worker.join().expect("a worker panicked"));
    }
    std::io::stdout().flush().unwrap();
    // A thread that keeps running while another one execs.
    thread::spawn(|| loop {
        thread::yield_now();
    });
    let script = format!(
        "echo exec-from-thread $([ $$ = {} ] && echo same-pid); uname -m",
        std::process::id()
    );
    let execer = thread::spawn(move || {
        let err = Command::new(&sh).args(["-c", &script]).exec();
        eprintln!("threads: exec of {sh} from a thread: {err}");
        std::process::exit(126);
    });
    let _ = execer.join();
    std::process::exit(127);
}
