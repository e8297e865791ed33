//! Server reflection for clients that have nothing else (DESIGN §12's
//! neighbour, issue "fits the tools people already use"): Python's
//! grpcio-reflection, which speaks only `grpc.reflection.v1alpha`, finds
//! the services the gateway answers, makes a Query from the descriptors it
//! was served and reads the refusal's `ErrorInfo` through them too.
//!
//! The Python packages are pinned in `tests/reflection/requirements.txt`;
//! `.ci/test` installs them into `target/pyenv`. Without them this fails,
//! naming that command.

use std::path::{Path, PathBuf};

use civex_proto::v1::AuditSearchRequest;
use civex_tests::TestGateway;

const INSTALL: &str = "run .ci/test, which installs them \
                       (python3 -m venv target/pyenv && target/pyenv/bin/pip install -r tests/reflection/requirements.txt)";

pub(crate) fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    assert!(
        python.exists(),
        "the tests' Python packages are missing ({}): {INSTALL}",
        python.display()
    );
    python
}

#[tokio::test]
async fn a_client_with_only_v1alpha_reflection_queries_and_reads_the_refusal_reason() {
    let python = python();
    let gw = TestGateway::start().await;
    let citizen = gw.samples[0].citizen_id.clone();
    let tls = gw.tls_for(&civex_cli::pki::ClientSpec::agency("qujing-psb"));
    let files = tempfile::tempdir().unwrap();
    for (name, pem) in [
        ("ca.pem", &tls.ca_pem),
        ("cert.pem", &tls.cert_pem),
        ("key.pem", &tls.key_pem),
    ] {
        std::fs::write(files.path().join(name), pem).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reflection/query_by_reflection.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .env("CIVEX_TARGET", gw.addr.to_string())
        .env("CIVEX_CA", files.path().join("ca.pem"))
        .env("CIVEX_CERT", files.path().join("cert.pem"))
        .env("CIVEX_KEY", files.path().join("key.pem"))
        .env("CIVEX_CITIZEN", &citizen)
        .output()
        .await
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "the Python client failed:\n{out}\n{err}");
    let result: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

    // Only what the gateway answers is advertised.
    let services: Vec<&str> = result["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [
            "civex.v1.AdminService",
            "civex.v1.AuditService",
            "civex.v1.CommitmentService",
            "civex.v1.ConsentService",
            "civex.v1.CorrectionService",
            "civex.v1.ExchangeService",
            "civex.v1.OversightService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
    // The Query without consent is refused, the reason read through reflection alone.
    assert_eq!(result["code"], "PERMISSION_DENIED", "{result}");
    assert_eq!(result["error_info"]["reason"], "CONSENT_REQUIRED", "{result}");
    assert_eq!(result["error_info"]["domain"], "civex", "{result}");

    // And the call is in the log like any other.
    let found = gw
        .audit("qujing-audit")
        .await
        .search(AuditSearchRequest {
            request_id: "py-reflection-1".into(),
            ..AuditSearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let [entry] = &found[..] else {
        panic!("one record: {found:#?}")
    };
    assert_eq!(
        (entry.agency.as_str(), entry.reason.as_str()),
        ("qujing-psb", "CONSENT_REQUIRED")
    );
}
