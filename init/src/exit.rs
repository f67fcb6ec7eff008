//! How the program's end becomes init's exit code, the way a shell reports it.

use nix::errno::Errno;

/// How the program ended, as waitpid reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChildEnd {
    Exited(i32),
    Killed(i32),
}

impl ChildEnd {
    /// Decodes a raw waitpid status. Stopped and continued reports are not ends.
    pub fn from_wait_status(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Killed(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The exit code, with 128+n for a signal so TERM gives 143 and KILL 137, as shells do.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Exited(code) => (code & 0xff) as u8,
            Self::Killed(signal) => ((128 + signal) & 0xff) as u8,
        }
    }
}

/// The exit code for a PROGRAM that could not be executed, as POSIX shells choose it:
/// 127 when there is nothing to run, 126 when there is something but it cannot run.
pub fn exec_failure_code(err: Errno) -> i32 {
    match err {
        Errno::ENOENT | Errno::ENOTDIR => 127,
        _ => 126,
    }
}

/// `--remap-exit FROM:TO` pairs; codes not listed pass through unchanged.
#[derive(Debug, Default, PartialEq)]
pub struct RemapTable {
    pairs: Vec<(u8, u8)>,
}

impl RemapTable {
    /// Adds FROM→TO; false when FROM already has a target, since which one wins would be a guess.
    pub fn insert(&mut self, from: u8, to: u8) -> bool {
        if self.pairs.iter().any(|&(f, _)| f == from) {
            return false;
        }
        self.pairs.push((from, to));
        true
    }

    pub fn apply(&self, code: u8) -> u8 {
        self.pairs
            .iter()
            .find(|&&(from, _)| from == code)
            .map_or(code, |&(_, to)| to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through() {
        for code in 0..=255 {
            assert_eq!(ChildEnd::Exited(code).exit_code(), code as u8);
        }
    }

    #[test]
    fn signals_map_to_128_plus_n() {
        assert_eq!(ChildEnd::Killed(libc::SIGTERM).exit_code(), 143);
        assert_eq!(ChildEnd::Killed(libc::SIGKILL).exit_code(), 137);
        assert_eq!(ChildEnd::Killed(libc::SIGINT).exit_code(), 130);
        assert_eq!(ChildEnd::Killed(64).exit_code(), 192);
    }

    #[test]
    fn raw_wait_statuses_decode() {
        // Layouts as the kernel writes them: code << 8 for exit, the signal in the low bits
        // (0x80 added for a core dump), 0x7f in the low byte for a stop.
        assert_eq!(ChildEnd::from_wait_status(0), Some(ChildEnd::Exited(0)));
        assert_eq!(
            ChildEnd::from_wait_status(42 << 8),
            Some(ChildEnd::Exited(42))
        );
        assert_eq!(
            ChildEnd::from_wait_status(255 << 8),
            Some(ChildEnd::Exited(255))
        );
        assert_eq!(ChildEnd::from_wait_status(15), Some(ChildEnd::Killed(15)));
        assert_eq!(
            ChildEnd::from_wait_status(0x80 | 11),
            Some(ChildEnd::Killed(11))
        );
        // A real-time signal, which nix's Signal enum could not represent.
        assert_eq!(ChildEnd::from_wait_status(40), Some(ChildEnd::Killed(40)));
        assert_eq!(ChildEnd::from_wait_status((19 << 8) | 0x7f), None);
        assert_eq!(ChildEnd::from_wait_status(0xffff), None);
    }

    #[test]
    fn exec_failures_like_a_shell() {
        assert_eq!(exec_failure_code(Errno::ENOENT), 127);
        assert_eq!(exec_failure_code(Errno::ENOTDIR), 127);
        assert_eq!(exec_failure_code(Errno::EACCES), 126);
        assert_eq!(exec_failure_code(Errno::ENOEXEC), 126);
        assert_eq!(exec_failure_code(Errno::EISDIR), 126);
    }

    #[test]
    fn remap_only_touches_listed_codes() {
        let mut table = RemapTable::default();
        assert!(table.insert(143, 0));
        assert!(table.insert(0, 1));
        assert!(!table.insert(143, 5));
        assert_eq!(table.apply(143), 0);
        assert_eq!(table.apply(0), 1);
        // Not chained: 143 becomes 0, not 1.
        for code in 1..=142 {
            assert_eq!(table.apply(code), code);
        }
        assert_eq!(table.apply(255), 255);
    }
}
