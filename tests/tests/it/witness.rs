//! Witnesses (DESIGN §12, C2SP tlog-witness): the reference witness over
//! HTTP refuses every checkpoint that forks what it cosigned before, with
//! the spec's statuses, and a gateway gives out no checkpoint that its
//! quorum of witnesses would not cosign.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use civex_audit::{checkpoint, keys::Signer, witness::AddCheckpoint};
use civex_proto::v1::{CheckpointRequest, ListAttributesRequest};
use civex_tests::{TestGateway, TestWitness, reason};

const AUDITOR: &str = "qujing-audit";

/// One HTTP/1.1 POST of `body` to `<witness>/add-checkpoint`: status, content type, body.
async fn post(witness: &TestWitness, body: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(witness.addr).await.unwrap();
    let request = format!(
        "POST /add-checkpoint HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        witness.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// An `add-checkpoint` body: a checkpoint of `size` with `root`, signed by `log`, and `proof` from `old`.
fn submission(log: &Signer, old: u64, size: u64, root: [u8; 32], proof: Vec<[u8; 32]>) -> String {
    let note = checkpoint::sign(log, size, &root).note;
    AddCheckpoint { old, proof, note }.encode()
}

/// The gateway's signing key, as its operator (or whoever took it) holds it.
fn log_key(gw: &TestGateway) -> Signer {
    Signer::load_or_create(&gw.config.data_dir, "unused: the key exists").unwrap()
}

async fn checkpoint(gw: &TestGateway) -> Result<civex_proto::v1::SignedCheckpoint, tonic::Status> {
    let mut audit = gw.audit(AUDITOR).await;
    audit.checkpoint(CheckpointRequest {}).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn the_witness_refuses_checkpoints_that_fork_the_log_with_the_specs_statuses() {
    let (gw, witness) = TestGateway::start().await.witnessed().await;
    let log = log_key(&gw);
    assert_eq!(log.verifier_key(), gw.verifier_key);
    let mut tax = gw.exchange("qujing-tax").await;
    for _ in 0..5 {
        tax.list_attributes(ListAttributesRequest {}).await.unwrap();
    }
    let cosigned = checkpoint(&gw).await.unwrap();
    let n = cosigned.tree_size;
    let root: [u8; 32] = cosigned.root_hash.clone().try_into().unwrap();

    // The log's own key signs each of these: only consistency tells them apart.
    let forged = [9u8; 32];
    for (what, body, want_status) in [
        (
            "the same size, another root",
            submission(&log, n, n, forged, vec![]),
            409,
        ),
        (
            "a larger tree grown from another past",
            submission(&log, n, n + 3, forged, vec![forged, forged]),
            422,
        ),
        (
            "a proof where none belongs",
            submission(&log, n, n, root, vec![forged]),
            422,
        ),
        (
            "a tree smaller than the old size",
            submission(&log, n, n - 1, root, vec![]),
            400,
        ),
        (
            "a request that is not the spec's",
            format!("old {n}\nnot base64\n\n"),
            400,
        ),
    ] {
        let (status, content_type, text) = post(&witness, &body).await;
        assert_eq!(status, want_status, "{what}: {text}");
        assert_ne!(content_type, "text/x.tlog.size", "{what}");
    }
    // A stale old size: 409 names the size cosigned, as text/x.tlog.size.
    let (status, content_type, text) = post(&witness, &submission(&log, 0, n + 3, forged, vec![])).await;
    assert_eq!(
        (status, content_type.as_str(), text),
        (409, "text/x.tlog.size", format!("{n}\n"))
    );
    // Another key under the log's name, and a log the witness does not know.
    let stranger = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]), log.name());
    assert_eq!(post(&witness, &submission(&stranger, n, n, root, vec![])).await.0, 403);
    let unknown = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]), "civex/elsewhere");
    assert_eq!(post(&witness, &submission(&unknown, 0, 1, root, vec![])).await.0, 404);

    // None of it moved the witness: the honest log goes on being cosigned.
    let next = checkpoint(&gw).await.unwrap();
    assert!(next.tree_size > n);
    let (status, _, cosignature) = post(
        &witness,
        &AddCheckpoint {
            old: next.tree_size,
            proof: vec![],
            note: checkpoint::sign(&log, next.tree_size, &next.root_hash.clone().try_into().unwrap()).note,
        }
        .encode(),
    )
    .await;
    assert_eq!(status, 200, "{cosignature}");
    assert!(cosignature.starts_with("— witness.test/w1 ") && cosignature.ends_with('\n'));
    assert_eq!(
        B64.decode(cosignature.trim().rsplit(' ').next().unwrap())
            .unwrap()
            .len(),
        76
    );
}

#[tokio::test]
async fn a_gateway_gives_out_no_checkpoint_its_witness_quorum_refuses() {
    let (gw, first) = TestGateway::start().await.witnessed().await;
    let log = log_key(&gw);
    let mut tax = gw.exchange("qujing-tax").await;
    for _ in 0..5 {
        tax.list_attributes(ListAttributesRequest {}).await.unwrap();
    }
    // A second witness was shown a split view: a tree of two records that
    // this log never had, signed with its key, cosigned on first use.
    let second = TestWitness::start("witness.test/w2", &gw.verifier_key).await;
    let (status, _, text) = post(&second, &submission(&log, 0, 2, [7; 32], vec![])).await;
    assert_eq!(status, 200, "{text}");

    // Quorum of both: the real log is not consistent with what w2 saw.
    let w2 = second.config();
    let gw = gw
        .restart_with(|c| {
            c.audit.witnesses.push(w2);
            c.audit.witness_quorum = Some(2);
        })
        .await;
    let refused = checkpoint(&gw).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(reason(&refused), "AUDIT_UNAVAILABLE");
    assert!(
        refused.message().contains("witness.test/w2") && refused.message().contains("422"),
        "{}",
        refused.message()
    );
    assert!(refused.metadata().get("retry-after").is_some());
    // The tiles' /checkpoint holds back too; w1 alone is not a quorum of two.
    let (status, _, _) = crate::tiles::get(&gw, AUDITOR, "/checkpoint").await;
    assert_eq!(status, 503);

    // A quorum of one: w1's cosignature is enough, and only its line is added.
    let gw = gw.restart_with(|c| c.audit.witness_quorum = Some(1)).await;
    let cp = checkpoint(&gw).await.unwrap();
    let (body, signatures) = checkpoint::split(&cp.note).unwrap();
    let w1 = civex_audit::keys::Verifier::parse_kind(&first.key, civex_audit::keys::KeyKind::Cosignature).unwrap();
    assert!(checkpoint::cosigned_at(body, signatures, &w1).is_some(), "{}", cp.note);
    assert!(!cp.note.contains("witness.test/w2"), "{}", cp.note);
    drop(second);
}
