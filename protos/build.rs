use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=proto/runtimeoptions.proto");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let gen = out.join("gen");
    fs::create_dir_all(&gen).unwrap();
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .input("proto/runtimeoptions.proto")
        .out_dir(&gen)
        .run_from_script();
    // The generated file carries inner attributes, which `include!` inside a module rejects.
    let text = fs::read_to_string(gen.join("runtimeoptions.rs")).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(out.join("runtimeoptions.rs"), body).unwrap();
}
