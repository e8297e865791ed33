//! Prometheus metrics (DESIGN §12): scraped over plain HTTP, parsed by the
//! Prometheus project's own parser (Python's `prometheus_client`, pinned in
//! `tests/reflection/requirements.txt`), with the counters moving as calls
//! are made.

use std::{collections::HashMap, time::SystemTime};

use civex_proto::v1::{ListAttributesRequest, QueryRequest};
use civex_tests::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A sample: its name and labels, sorted, as one key.
type Samples = HashMap<String, f64>;

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

/// Scrapes `/metrics` and parses it with the OpenMetrics parser of the
/// Prometheus Python client, which refuses anything malformed.
async fn scrape(gw: &TestGateway) -> (String, Samples) {
    let addr = gw.metrics_addr.expect("metrics are on");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    let parse = "import sys, json\n\
                 from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
                 print(json.dumps([[s.name, s.labels, s.value] for f in parse(sys.stdin.read()) for s in f.samples]))";
    let mut child = tokio::process::Command::new(crate::reflection::python())
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "the scrape does not parse: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, HashMap<String, String>, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    let samples = parsed
        .into_iter()
        .map(|(name, labels, value)| {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            (key(&name, &labels), value)
        })
        .collect();
    (body.to_owned(), samples)
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples.get(&key(name, labels)).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn a_scrape_parses_as_openmetrics_and_its_counters_move_with_the_calls() {
    let (gw, _witness) = TestGateway::start_with(|c| c.metrics.listen = Some("127.0.0.1:0".parse().unwrap()))
        .await
        .witnessed()
        .await;
    let mut tax = gw.exchange("qujing-tax").await;
    tax.list_attributes(ListAttributesRequest {}).await.unwrap();
    let (_, before) = scrape(&gw).await;

    for _ in 0..3 {
        tax.list_attributes(ListAttributesRequest {}).await.unwrap();
    }
    let citizen = gw.samples[0].citizen_id.clone();
    let mut psb = gw.exchange("qujing-psb").await;
    psb.query(QueryRequest {
        citizen_id: citizen.clone(),
        attributes: vec!["ps.hukou.division".into()],
        purpose: "hukou.settlement".into(),
        operator: "officer-1".into(),
        ..QueryRequest::default()
    })
    .await
    .unwrap_err();
    let size = gw.checkpoint_size().await;
    crate::tiles::get(&gw, "qujing-audit", "/checkpoint").await;
    let (text, after) = scrape(&gw).await;

    let listed = [
        ("service", "ExchangeService"),
        ("method", "ListAttributes"),
        ("agency", "qujing-tax"),
        ("reason", "OK"),
    ];
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("civex_calls_total", &listed), 3.0);
    let refused = [
        ("service", "ExchangeService"),
        ("method", "Query"),
        ("agency", "qujing-psb"),
        ("reason", "CONSENT_REQUIRED"),
    ];
    assert_eq!(moved("civex_calls_total", &refused), 1.0);
    let method = [("service", "ExchangeService"), ("method", "ListAttributes")];
    assert_eq!(moved("civex_call_duration_seconds_count", &method), 3.0);
    assert!(moved("civex_audit_batch_records_count", &[]) >= 1.0);
    assert!(moved("civex_audit_batch_write_seconds_count", &[]) >= 1.0);
    assert!(value(&after, "civex_audit_tree_size", &[]) >= size as f64);
    assert!(value(&after, "civex_audit_checkpoint_age_seconds", &[]) < 60.0);
    let tiles = [("resource", "checkpoint"), ("status", "200")];
    assert_eq!(moved("civex_tile_reads_total", &tiles), 1.0);
    // The tile read is no call: the one AuditService call counted is the Checkpoint.
    assert_eq!(
        moved(
            "civex_calls_total",
            &[
                ("service", "AuditService"),
                ("method", "Checkpoint"),
                ("agency", "qujing-audit"),
                ("reason", "OK")
            ]
        ),
        1.0
    );
    // The Checkpoint call's checkpoint went to the witness, which cosigned it.
    let cosigned = [("witness", "witness.test/w1"), ("outcome", "cosigned")];
    assert!(moved("civex_witness_submissions_total", &cosigned) >= 1.0);
    assert_eq!(
        value(
            &after,
            "civex_witness_submissions_total",
            &[("witness", "witness.test/w1"), ("outcome", "failed")]
        ),
        0.0
    );
    assert!(value(&after, "civex_connections", &[("agency", "qujing-tax")]) >= 1.0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(value(&after, "civex_crl_next_update_timestamp_seconds", &[]) > now);
    assert!(value(&after, "civex_server_certificate_expiry_timestamp_seconds", &[]) > now);
    // Labels are agencies, methods and reasons: no citizen's ID.
    assert!(!text.contains(&citizen) && !text.contains(&citizen[..17]), "{text}");
}

#[tokio::test]
async fn metrics_are_off_unless_configured() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.metrics_addr, None);
}
