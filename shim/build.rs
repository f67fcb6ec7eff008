//! Links the static (musl) x86_64 shim, the one nodes run, with the lld that ships with Rust,
//! so that:
//!
//! - its relative relocations are packed (`-z pack-relative-relocs`): 11,000 of them took
//!   260 kB that every shim mapped to relocate itself once;
//! - the functions a serving shim runs come first in `.text`, in the order of
//!   `link/hot-functions.txt`. A shim maps its code in 64 kB windows (the kernel's fault-around),
//!   and the code it runs is a third of its binary, scattered over nearly every window, so
//!   grouping it roughly halves the code an idle shim keeps mapped. The list names functions
//!   without their symbol hash, which moves with every dependency update; `link/ordered-lld`,
//!   put before the toolchain's lld as gcc's `ld.lld`, matches it to the build's symbols. A
//!   name the list has and the build lacks (a function renamed since the list was made) is
//!   skipped: the layout only gets worse, never wrong. `scripts/hot-functions.sh` makes the
//!   list again;
//! - `.init` and `.fini`, 3 bytes each, come before `.text` (`link/init-first.ld`): after it, the
//!   call to `_init` at start mapped the cold code that shares their page-cache folio.
//!
//! Elsewhere (tests on the host, other targets, a toolchain without its lld) nothing changes.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    println!("cargo:rerun-if-changed=link/hot-functions.txt");
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target_env != "musl" || target_arch != "x86_64" {
        return;
    }
    let Some(gcc_ld) = rust_lld_dir() else {
        println!(
            "cargo:warning=rust-lld not found in the toolchain: the shim is linked as it is, \
             with more resident code"
        );
        return;
    };
    let link = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("link");
    println!("cargo:rerun-if-changed=link/ordered-lld");
    println!("cargo:rerun-if-changed=link/init-first.ld");
    let ld = ordered_lld(&gcc_ld, &link)
        .unwrap_or_else(|e| panic!("cannot write the shim's linker wrapper: {e}"));
    for arg in [
        "-fuse-ld=lld".to_string(),
        format!("-B{}", ld.display()),
        "-Wl,-z,pack-relative-relocs".to_string(),
        format!("-Wl,-T,{}", link.join("init-first.ld").display()),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// A directory whose `ld.lld` runs `link/ordered-lld` with the toolchain's `ld.lld` and the list.
fn ordered_lld(gcc_ld: &Path, link: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let dir = PathBuf::from(env::var("OUT_DIR").unwrap()).join("gcc-ld");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("ld.lld");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} {} {} \"$@\"\n",
            quote(&link.join("ordered-lld")),
            quote(&gcc_ld.join("ld.lld")),
            quote(&link.join("hot-functions.txt")),
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// The directory of the toolchain's `ld.lld` wrapper around rust-lld, for gcc's `-B`.
fn rust_lld_dir() -> Option<PathBuf> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let dir = sysroot
        .join("lib/rustlib")
        .join(env::var("HOST").ok()?)
        .join("bin/gcc-ld");
    dir.join("ld.lld").is_file().then_some(dir)
}
