//! Compiles `civex/v1/*.proto` with protox (pure Rust), so a fresh machine
//! needs no system `protoc`. The descriptor set is kept for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "civex/v1/common.proto",
    "civex/v1/exchange.proto",
    "civex/v1/consent.proto",
    "civex/v1/source.proto",
    "civex/v1/audit.proto",
    "civex/v1/admin.proto",
    "civex/v1/oversight.proto",
    "civex/v1/commitment.proto",
    "civex/v1/correction.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("civex_descriptor.bin"), fds.encode_to_vec())?;
    // Each message names itself (`prost::Name`), so clients can print it as proto3 JSON.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    // Services only with the `grpc` feature: without it nothing of tonic is built.
    #[cfg(feature = "grpc")]
    tonic_prost_build::configure().compile_fds_with_config(fds, config)?;
    #[cfg(not(feature = "grpc"))]
    config.compile_fds(fds)?;
    Ok(())
}
