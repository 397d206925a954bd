//! Proves that the checked-in protobuf code (`src/generated/vss.rs`) is what
//! `proto/vss.proto` generates, so nobody needs `protoc` to build the crate.
//!
//! Regenerate after editing the proto with:
//! `VSS_REGENERATE_PROTO=1 cargo test -p vss-core --test generated_code`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::path::{Path, PathBuf};

fn generate_into(out_dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc is available");
    let mut config = prost_build::Config::new();
    // Values as `bytes::Bytes`, so a large value decoded from a request body is
    // shared with that body instead of copied.
    config
        .protoc_executable(protoc)
        .out_dir(out_dir)
        .bytes(["."]);
    config
        .compile_protos(&[root.join("vss.proto")], &[root])
        .expect("proto/vss.proto compiles");
    out_dir.join("vss.rs")
}

#[test]
fn generated_code_is_current() {
    let out_dir = std::env::temp_dir().join(format!("vss-proto-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let fresh = std::fs::read_to_string(generate_into(&out_dir)).unwrap();
    std::fs::remove_dir_all(&out_dir).unwrap();

    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated/vss.rs");
    if std::env::var_os("VSS_REGENERATE_PROTO").is_some() {
        std::fs::write(&checked_in, &fresh).unwrap();
    }
    let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        current == fresh,
        "src/generated/vss.rs is stale: run `VSS_REGENERATE_PROTO=1 cargo test -p vss-core --test generated_code`"
    );
}
