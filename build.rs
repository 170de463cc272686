//! Compiles the API contract in `proto/` with protox (pure Rust: no system
//! `protoc`) and writes the generated code plus a file descriptor set for
//! server reflection into OUT_DIR. Also records the git commit, when known.

use std::path::PathBuf;
use std::process::Command;

const PROTOS: &[&str] = &[
    "agentd/v1/admin.proto",
    "agentd/v1/agent.proto",
    "agentd/v1/retrieval.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let descriptor_path = out_dir.join("agentd_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds(descriptors)?;

    record_git_commit();
    Ok(())
}

/// Exposes the commit as `AGENTD_GIT_COMMIT`: from the environment variable of
/// that name when set (release builds outside a checkout), else from git.
fn record_git_commit() {
    println!("cargo:rerun-if-env-changed=AGENTD_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("AGENTD_GIT_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=AGENTD_GIT_COMMIT={}",
        commit.unwrap_or_default()
    );
}
