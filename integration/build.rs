//! Builds the aarch64 helpers of the tests (`helpers/*.rs`, std only) with the toolchain's
//! rustc for aarch64-unknown-linux-musl, linked by rust-lld as the aarch64 init is (see
//! .cargo/config.toml), into OUT_DIR: the tests run where no toolchain may be (the sid lane's
//! root), and the build dir is there at the same path. A helper that cannot be built is
//! passed on as the reason, which the test reports (a failure under CI).

use std::path::Path;
use std::process::Command;

const AARCH64_HELPERS: &[&str] = &["threads"];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out_dir = std::env::var("OUT_DIR").unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let linker = Path::new(&manifest).join("../scripts/lib/musl-static-pie-ld");
    println!("cargo:rerun-if-changed={}", linker.display());
    for name in AARCH64_HELPERS {
        let source = Path::new(&manifest)
            .join("helpers")
            .join(format!("{name}.rs"));
        println!("cargo:rerun-if-changed={}", source.display());
        let out = Path::new(&out_dir).join(format!("{name}-aarch64"));
        let built = Command::new(&rustc)
            .args([
                "--edition",
                "2021",
                "-O",
                "--target",
                "aarch64-unknown-linux-musl",
            ])
            .arg("-C")
            .arg(format!("linker={}", linker.display()))
            .args(["-C", "linker-flavor=ld.lld", "-o"])
            .arg(&out)
            .arg(&source)
            .output();
        let result = match built {
            Ok(o) if o.status.success() => format!("ok:{}", out.display()),
            Ok(o) => format!(
                "rustc of {} for aarch64 failed (rustup target add aarch64-unknown-linux-musl, \
                 or run scripts/install-deps.sh): {}",
                source.display(),
                String::from_utf8_lossy(&o.stderr).replace('\n', " ")
            ),
            Err(e) => format!("no rustc to build {} for aarch64: {e}", source.display()),
        };
        println!(
            "cargo:rustc-env=CROSSARCH_AARCH64_HELPER_{}={result}",
            name.to_uppercase()
        );
    }
}
