//! The log for standard tools (DESIGN §12): an auditor mirrors the whole
//! log over HTTPS as C2SP tlog-tiles and verifies it against a checkpoint
//! a witness cosigned, with a client written here from the C2SP texts
//! (tlog-tiles, tlog-checkpoint, signed-note, tlog-cosignature) and RFC
//! 6962, using none of civex's own log code.

use std::time::Duration;

use civex_proto::v1::{AuditRecord, CheckpointRequest, GetEntryRequest, ListAttributesRequest};
use civex_tests::TestGateway;
use prost::Message;

const AUDITOR: &str = "qujing-audit";

/// A client of a tiled transparency log, from the specifications alone.
mod tlog {
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    use sha2::{Digest, Sha256};

    pub(crate) type Hash = [u8; 32];

    /// A signed-note verifier key: `<name>+<hex key hash>+<base64(type ‖ public key)>`.
    pub(crate) struct NoteKey {
        name: String,
        id: [u8; 4],
        key: VerifyingKey,
    }

    impl NoteKey {
        /// A log's key: Ed25519 note signatures, type 0x01.
        pub(crate) fn parse(vkey: &str) -> NoteKey {
            NoteKey::parse_type(vkey, 0x01)
        }

        /// A witness's key: Ed25519 cosignatures (tlog-cosignature v1), type 0x04.
        pub(crate) fn parse_witness(vkey: &str) -> NoteKey {
            NoteKey::parse_type(vkey, 0x04)
        }

        fn parse_type(vkey: &str, type_byte: u8) -> NoteKey {
            let mut parts = vkey.trim().splitn(3, '+');
            let (name, hash, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let key = B64.decode(key).unwrap();
            assert_eq!(key[0], type_byte, "an Ed25519 key of the type");
            let id: [u8; 4] = Sha256::new()
                .chain_update(name.as_bytes())
                .chain_update(b"\n")
                .chain_update(&key)
                .finalize()[..4]
                .try_into()
                .unwrap();
            assert_eq!(hex::encode(id), hash, "the key hash in the vkey");
            let key = VerifyingKey::from_bytes(key[1..].try_into().unwrap()).unwrap();
            NoteKey {
                name: name.to_owned(),
                id,
                key,
            }
        }
    }

    /// A checkpoint whose note carries a valid signature by `key`.
    #[derive(Debug)]
    pub(crate) struct Checkpoint {
        pub(crate) origin: String,
        pub(crate) size: u64,
        pub(crate) root: Hash,
    }

    pub(crate) fn open_checkpoint(note: &str, key: &NoteKey) -> Checkpoint {
        let (text, signatures) = note.split_once("\n\n").expect("a note: text, a blank line, signatures");
        let text = format!("{text}\n");
        let signed = signatures.lines().any(|line| {
            let Some(rest) = line.strip_prefix("— ") else {
                return false;
            };
            let Some((name, sig)) = rest.split_once(' ') else {
                return false;
            };
            let sig = B64.decode(sig).unwrap_or_default();
            name == key.name
                && sig.len() == 68
                && sig[..4] == key.id
                && key
                    .key
                    .verify(text.as_bytes(), &Signature::from_slice(&sig[4..]).unwrap())
                    .is_ok()
        });
        assert!(signed, "no valid signature by {} on\n{note}", key.name);
        let mut lines = text.lines();
        let origin = lines.next().unwrap().to_owned();
        let size = lines.next().unwrap().parse().unwrap();
        let root = B64.decode(lines.next().unwrap()).unwrap().try_into().unwrap();
        Checkpoint { origin, size, root }
    }

    /// The timestamp of a valid cosignature by `witness` on the note: the
    /// signature is key ID ‖ u64 timestamp ‖ Ed25519 over
    /// "cosignature/v1\ntime <t>\n" and the note's text.
    pub(crate) fn cosigned_at(note: &str, witness: &NoteKey) -> u64 {
        let (text, signatures) = note.split_once("\n\n").unwrap();
        let text = format!("{text}\n");
        signatures
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("— {} ", witness.name)))
            .filter_map(|sig| B64.decode(sig).ok())
            .filter(|sig| sig.len() == 76 && sig[..4] == witness.id)
            .find_map(|sig| {
                let time = u64::from_be_bytes(sig[4..12].try_into().unwrap());
                let message = format!("cosignature/v1\ntime {time}\n{text}");
                let signature = Signature::from_slice(&sig[12..]).unwrap();
                witness.key.verify(message.as_bytes(), &signature).ok().map(|()| time)
            })
            .unwrap_or_else(|| panic!("no valid cosignature by {} on\n{note}", witness.name))
    }

    /// `tile/<L>/<N>[.p/<W>]`, or `tile/entries/…` when `level` is `None`.
    pub(crate) fn tile_path(level: Option<u32>, n: u64, width: u64) -> String {
        let mut groups = vec![format!("{:03}", n % 1000)];
        let mut rest = n / 1000;
        while rest > 0 {
            groups.push(format!("x{:03}", rest % 1000));
            rest /= 1000;
        }
        groups.reverse();
        let level = level.map_or("entries".to_owned(), |l| l.to_string());
        let partial = if width == 256 {
            String::new()
        } else {
            format!(".p/{width}")
        };
        format!("/tile/{level}/{}{partial}", groups.join("/"))
    }

    /// The entries of a bundle: big-endian u16 length, then the bytes.
    pub(crate) fn bundle_entries(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
            out.push(bytes[2..2 + len].to_vec());
            bytes = &bytes[2 + len..];
        }
        out
    }

    pub(crate) fn tile_hashes(bytes: &[u8]) -> Vec<Hash> {
        assert_eq!(bytes.len() % 32, 0);
        bytes.chunks(32).map(|h| h.try_into().unwrap()).collect()
    }

    pub(crate) fn leaf_hash(entry: &[u8]) -> Hash {
        Sha256::new().chain_update([0]).chain_update(entry).finalize().into()
    }

    /// RFC 6962's Merkle Tree Hash over leaf hashes.
    pub(crate) fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                Sha256::new()
                    .chain_update([1])
                    .chain_update(mth(&leaves[..k]))
                    .chain_update(mth(&leaves[k..]))
                    .finalize()
                    .into()
            }
        }
    }
}

/// One HTTP/1.1 GET over its own mTLS connection: status, headers (names lower-case), body.
pub(crate) async fn get(gw: &TestGateway, agency: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = gw.tls_for(&civex_cli::pki::ClientSpec::agency(agency));
    let mut stream = gw.raw_tls_speaking(&tls, b"http/1.1").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A peer that closes without close_notify still gave the whole body (Content-Length is checked).
    let _ = stream.read_to_end(&mut answer).await;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let body = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    if let Some((_, length)) = headers.iter().find(|(n, _)| n == "content-length") {
        assert_eq!(body.len(), length.parse::<usize>().unwrap(), "{path}: the whole body");
    }
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Fetches `path` as the auditor, expecting 200 with `content_type` and `cache`.
async fn fetch(gw: &TestGateway, path: &str, content_type: &str, cache: &str) -> Vec<u8> {
    let (status, headers, body) = get(gw, AUDITOR, path).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), Some(content_type), "{path}");
    assert_eq!(header(&headers, "cache-control"), Some(cache), "{path}");
    body
}

#[tokio::test]
async fn an_auditor_mirrors_and_verifies_the_whole_log_through_tlog_tiles_alone() {
    mirror_and_verify(TestGateway::start().await).await;
}

#[tokio::test]
async fn the_log_on_postgres_is_mirrored_through_the_same_tiles() {
    let pg = crate::postgres::postgres();
    mirror_and_verify(TestGateway::start_with(crate::postgres::on(&pg)).await).await;
}

/// Makes more than two full tiles' worth of records, then mirrors the log
/// through its tiles alone and checks it against the checkpoint the
/// gateway signed and its witness cosigned.
async fn mirror_and_verify(gw: TestGateway) {
    let (gw, witness) = gw.witnessed().await;
    let gw = &gw;
    let mut tax = gw.exchange("qujing-tax").await;
    // Each call is a record, allowed or refused (on two busy cores a gateway
    // on PostgreSQL may fail one closed when its poll of the store is late).
    for _ in 0..600 {
        let _ = tax.list_attributes(ListAttributesRequest {}).await;
    }
    let mut audit = gw.audit(AUDITOR).await;
    let signed = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();

    let key = tlog::NoteKey::parse(&gw.verifier_key);
    let witness_key = tlog::NoteKey::parse_witness(&witness.key);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cosigned = tlog::cosigned_at(&signed.note, &witness_key);
    assert!(cosigned.abs_diff(now) < 600, "cosigned at {cosigned}, now {now}");
    let note = fetch(gw, "/checkpoint", "text/plain; charset=utf-8", "no-store").await;
    let note = std::str::from_utf8(&note).unwrap();
    tlog::cosigned_at(note, &witness_key);
    let cp = tlog::open_checkpoint(note, &key);
    assert_eq!(cp.size, signed.tree_size, "the checkpoint the Checkpoint call signed");
    assert!(cp.size > 600, "{cp:?}");
    assert!(gw.verifier_key.starts_with(&format!("{}+", cp.origin)));

    // The mirror: every entry bundle and level-0 tile, full and partial.
    const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    let (full, partial) = (cp.size / 256, cp.size % 256);
    let mut entries = Vec::new();
    let mut leaf_tiles = Vec::new();
    for n in 0..=full {
        let width = if n < full { 256 } else { partial };
        if width == 0 {
            break;
        }
        let bundle = fetch(
            gw,
            &tlog::tile_path(None, n, width),
            "application/octet-stream",
            IMMUTABLE,
        )
        .await;
        let bundle = tlog::bundle_entries(&bundle);
        let tile = fetch(
            gw,
            &tlog::tile_path(Some(0), n, width),
            "application/octet-stream",
            IMMUTABLE,
        )
        .await;
        let tile = tlog::tile_hashes(&tile);
        assert_eq!((bundle.len(), tile.len()), (width as usize, width as usize));
        let hashed: Vec<tlog::Hash> = bundle.iter().map(|e| tlog::leaf_hash(e)).collect();
        assert_eq!(hashed, tile, "bundle {n} hashes to tile 0/{n}");
        if n < full {
            leaf_tiles.push(tlog::mth(&tile));
        }
        entries.extend(bundle);
    }
    assert_eq!(entries.len() as u64, cp.size);
    let leaves: Vec<tlog::Hash> = entries.iter().map(|e| tlog::leaf_hash(e)).collect();
    assert_eq!(
        tlog::mth(&leaves),
        cp.root,
        "the mirrored entries make the checkpoint's root"
    );
    // Level 1 holds the roots of the full level-0 tiles.
    let level1 = fetch(
        gw,
        &tlog::tile_path(Some(1), 0, full),
        "application/octet-stream",
        IMMUTABLE,
    )
    .await;
    assert_eq!(tlog::tile_hashes(&level1), leaf_tiles);

    // Each entry is the record's exact leaf bytes, and none holds a raw ID.
    let entry = audit
        .get_entry(GetEntryRequest { index: 42 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entries[42], entry.leaf);
    for (i, bytes) in entries.iter().enumerate() {
        let record = AuditRecord::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("entry {i}: {e}"));
        assert!(!record.action.is_empty(), "entry {i}");
    }

    // Reading tiles is not a log entry: the next checkpoint is two records
    // further, the GetEntry's and its own.
    let next = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();
    assert_eq!(next.tree_size, cp.size + 2);
}

#[tokio::test]
async fn tiles_are_for_auditors_in_the_spec_spelling_and_only_as_far_as_the_checkpoint() {
    let gw = TestGateway::start().await;
    let size = gw.checkpoint_size().await;
    assert!((1..256).contains(&size), "{size}");

    // A requester is refused with the reason, as over gRPC.
    let (status, _, body) = get(&gw, "qujing-psb", "/checkpoint").await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).split(':').next()),
        (403, Some("ROLE_REQUIRED"))
    );
    let (status, _, _) = get(&gw, "qujing-psb", &tlog::tile_path(Some(0), 0, size)).await;
    assert_eq!(status, 403);

    for (path, want) in [
        (tlog::tile_path(Some(0), 0, size), 200),
        (tlog::tile_path(None, 0, size), 200),
        (tlog::tile_path(Some(0), 0, size + 1), 404),
        (tlog::tile_path(Some(0), 0, 256), 404),
        (tlog::tile_path(None, 1, 1), 404),
        (tlog::tile_path(Some(1), 0, 1), 404),
        ("/tile/0/0".into(), 400),
        ("/tile/00/000".into(), 400),
        ("/tile/0/000.p/0".into(), 400),
        ("/tile/0/x000/000".into(), 400),
        ("/tile/64/000".into(), 400),
        ("/tile/entries".into(), 400),
        ("/nosuch".into(), 404),
        ("/".into(), 404),
    ] {
        let (status, headers, body) = get(&gw, AUDITOR, &path).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
        if want != 200 {
            assert_eq!(
                header(&headers, "cache-control"),
                None,
                "{path}: a refusal is not cached as immutable"
            );
        }
    }
    // A narrower partial tile, as a client holding an older checkpoint asks for, is served.
    let (status, _, body) = get(&gw, AUDITOR, &tlog::tile_path(Some(0), 0, 1)).await;
    assert_eq!((status, body.len()), (200, 32));

    // gRPC clients and tile readers share the port: gRPC still answers.
    tokio::time::timeout(Duration::from_secs(5), gw.checkpoint_size())
        .await
        .unwrap();
}
