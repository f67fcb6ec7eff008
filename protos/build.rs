use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &["runtimeoptions", "runctypes", "bootstrap"];

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let gen = out.join("gen");
    fs::create_dir_all(&gen).unwrap();
    let mut codegen = protobuf_codegen::Codegen::new();
    codegen.pure().include("proto").out_dir(&gen);
    for name in PROTOS {
        println!("cargo:rerun-if-changed=proto/{name}.proto");
        codegen.input(format!("proto/{name}.proto"));
    }
    codegen.run_from_script();
    for name in PROTOS {
        // The generated file carries inner attributes, which `include!` inside a module rejects.
        let text = fs::read_to_string(gen.join(format!("{name}.rs"))).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(out.join(format!("{name}.rs")), body).unwrap();
    }
}
