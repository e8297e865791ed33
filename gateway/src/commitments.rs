//! Notification and commitment (告知承诺制, 国办发〔2020〕42号; DESIGN §15).
//!
//! Where no register answers at once, or an agency decides on the citizen's
//! signed statement to save them a trip, it records the commitment with
//! `CommitmentService.Record`: the gateway keeps the statement's SHA-256
//! (never the statement), signs a receipt with its log key and stores what
//! the later check needs. Once `verify_after` has come, [`follow`] draws a
//! sample (`[commitments."<matter>"] sample`; always for a citizen the same
//! agency found false before) and checks each one drawn by evaluating the
//! commitment's predicate under its consent, as the recording agency would
//! with `ExchangeService.Check`: the consent must still allow it and its use
//! is counted. Each step is the gateway's own action in the log
//! ([`VERIFY`], operator [`GATEWAY_OPERATOR`]), written before the
//! commitment's state moves; a false outcome raises `false_commitment`.
//!
//! States: `PENDING` until checked; `NOT_SAMPLED`; `TRUE` or `FALSE`;
//! `UNVERIFIABLE` when the check was refused (the consent expired, was
//! withdrawn or used up; the agency lost the right or was suspended; the
//! parameters no longer check). A department that cannot answer leaves it
//! pending: it is tried again after a minute, then at doubling intervals.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use civex_adapters::CitizenId;
use civex_proto::v1::{Commitment, CommitmentState};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{
    consent::Use,
    error::{Error, Reason},
    policy::{access::Role, predicates},
    service::{Draft, State},
    store::StoredCommitment,
};

/// The action of a `Record` call.
pub const RECORD: &str = "CommitmentService/Record";
/// The action of the gateway's own check, which no client can call.
pub const VERIFY: &str = "CommitmentService/Verify";
/// The operator label of the gateway's own actions.
pub const GATEWAY_OPERATOR: &str = "civex-gateway";
/// How often a gateway looks for commitments due.
pub const VERIFY_EVERY: Duration = Duration::from_millis(500);
/// How long a gateway holds a commitment it is checking; a claim that
/// lapses (the gateway stopped, a department did not answer) lets it be tried again.
const CLAIM_FOR: Duration = Duration::from_secs(60);
/// Commitments checked per round at most.
const ROUND: usize = 64;
/// First line of a receipt.
const RECEIPT_HEADER: &str = "civex commitment receipt v1";

/// One matter's sampling, `[commitments."<matter>"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matter {
    /// The share of commitments verified, 0.0 to 1.0.
    pub sample: f64,
}

/// The demo's matters (DESIGN §17): `demo.residence`, every commitment verified.
pub fn demo_matters() -> BTreeMap<String, Matter> {
    BTreeMap::from([("demo.residence".to_owned(), Matter { sample: 1.0 })])
}

/// Checks matter codes (1-64 of `a-z`, `0-9`, `.`, `_`, `-`, as purposes are
/// spelled) and their samples.
pub fn validate_matters(matters: &BTreeMap<String, Matter>) -> Result<(), String> {
    for (code, matter) in matters {
        let spelled = (1..=64).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && !crate::policy::labels::holds_citizen_id(code);
        if !spelled {
            return Err(format!(
                "commitments: matter {code:?} must be 1-64 of a-z, 0-9, '.', '_' and '-'"
            ));
        }
        if !(0.0..=1.0).contains(&matter.sample) {
            return Err(format!("commitments.\"{code}\".sample must be between 0.0 and 1.0"));
        }
    }
    Ok(())
}

/// The lower-case hex SHA-256 of a statement.
pub fn statement_sha256(statement: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(statement))
}

/// The text the gateway signs for `c`, recorded by `agency`: the body of a
/// C2SP signed note, which any signed-note tool checks with the gateway's
/// verifier key (`civex keys`). Its first line is never the log's origin, so
/// a receipt cannot pass for a checkpoint.
pub fn receipt(c: &Commitment, agency: &str) -> String {
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(ToString::to_string).unwrap_or_default();
    format!(
        "{RECEIPT_HEADER}\nid {}\nstatement-sha256 {}\nmatter {}\nagency {agency}\nrecorded-at {}\nverify-after {}\n",
        c.commitment_id,
        c.statement_sha256,
        c.matter,
        time(&c.recorded_at),
        time(&c.verify_after),
    )
}

/// Signs `c`'s receipt: sets `receipt` and `signature` (the key hash, then
/// the Ed25519 signature, as a signed note's signature line carries them).
pub fn sign(c: &mut Commitment, agency: &str, signer: &civex_audit::keys::Signer) {
    c.receipt = receipt(c, agency);
    c.key_id = signer.key_id();
    let mut signature = signer.key_hash().to_be_bytes().to_vec();
    signature.extend_from_slice(&signer.sign(c.receipt.as_bytes()));
    c.signature = signature;
}

/// Checks the commitments that are due, every [`VERIFY_EVERY`], until the gateway stops.
pub async fn follow(state: Arc<State>) {
    let mut retries = Retries::default();
    let mut failing = false;
    loop {
        tokio::time::sleep(VERIFY_EVERY).await;
        match verify_due(&state, &mut retries).await {
            Ok(()) if std::mem::take(&mut failing) => tracing::info!("commitments are being verified again"),
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(cause = %e, "commitments cannot be verified now; they stay pending");
            }
            Err(_) => {}
        }
    }
}

/// Commitments whose check a department could not answer: how often, and
/// not before when to try again (a minute, doubling up to a day), so that an
/// outage does not write a refusal a minute for every pending commitment.
#[derive(Default)]
struct Retries(std::collections::HashMap<String, (u32, SystemTime)>);

impl Retries {
    fn waiting(&self, id: &str, now: SystemTime) -> bool {
        self.0.get(id).is_some_and(|(_, next)| *next > now)
    }

    fn failed(&mut self, id: &str, now: SystemTime) {
        let (tries, next) = self.0.entry(id.to_owned()).or_insert((0, now));
        *tries += 1;
        let wait = CLAIM_FOR.saturating_mul(1 << (*tries - 1).min(10)).min(MAX_WAIT);
        *next = now + wait;
    }
}

/// The longest a commitment waits between tries.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Checks every commitment due that this gateway can claim, each at the
/// time it is claimed.
async fn verify_due(state: &State, retries: &mut Retries) -> Result<(), Error> {
    for c in state.commitments.due(state.clock.now(), ROUND).await? {
        let now = state.clock.now();
        if retries.waiting(c.id(), now) || !state.commitments.claim(c.id(), now, now + CLAIM_FOR).await? {
            continue;
        }
        match verify(state, &c, now).await? {
            Some(outcome) => {
                retries.0.remove(c.id());
                settle(state, &c, outcome).await?;
            }
            None => retries.failed(c.id(), now),
        }
    }
    Ok(())
}

/// Draws `c` or not, checks it if drawn and records what was done: the
/// state it is to move to, or `None` when a department could not answer
/// (the refusal is recorded and it is tried again later).
async fn verify(state: &State, c: &StoredCommitment, now: SystemTime) -> Result<Option<CommitmentState>, Error> {
    let mut draft = Draft::own(VERIFY, &c.agency, GATEWAY_OPERATOR);
    draft.citizen_ref(&c.citizen_ref);
    draft.subject_label(c.id());
    draft.purpose(&c.commitment.purpose);
    let sample = state.matters.get(&c.commitment.matter).map_or(1.0, |m| m.sample);
    // Only the agency's own earlier findings: another's are not its to know.
    let drawn = state.commitments.found_false(&c.agency, &c.citizen_ref).await? || rand::random::<f64>() < sample;
    let (outcome, refusal) = if drawn {
        draft.scopes(std::slice::from_ref(&c.commitment.predicate));
        draft.consent(&c.consent_id);
        match check(state, c, now, &mut draft).await {
            Ok(true) => (CommitmentState::CommitmentTrue, None),
            Ok(false) => (CommitmentState::CommitmentFalse, None),
            Err(e)
                if matches!(
                    e.reason,
                    Reason::SourceUnavailable | Reason::AuditUnavailable | Reason::Internal
                ) =>
            {
                state.record_own(&draft, Some(&e)).await?;
                return Ok(None);
            }
            Err(e) => (CommitmentState::CommitmentUnverifiable, Some(e)),
        }
    } else {
        (CommitmentState::CommitmentNotSampled, None)
    };
    draft.note(outcome.as_str_name());
    match state.record_own(&draft, refusal.as_ref()).await {
        Ok(_) => Ok(Some(outcome)),
        // The log refused the use as it was written (the consent was withdrawn
        // or ran out meanwhile): its record is that refusal, with no outcome.
        Err(e) if matches!(e.reason, Reason::ConsentRevoked | Reason::ConsentExhausted) => {
            Ok(Some(CommitmentState::CommitmentUnverifiable))
        }
        Err(e) => Err(e),
    }
}

/// Moves `c` to `outcome`, whose record is durable: tried a few times, as a
/// commitment left pending would be checked (and recorded) once more.
async fn settle(state: &State, c: &StoredCommitment, outcome: CommitmentState) -> Result<(), Error> {
    let mut tries = 0;
    loop {
        match state.commitments.settle(c.id(), outcome, state.clock.now()).await {
            Ok(true) => {
                tracing::info!(commitment = c.id(), state = outcome.as_str_name(), "commitment settled");
                return Ok(());
            }
            Ok(false) => {
                tracing::warn!(commitment = c.id(), "commitment was settled by another check first");
                return Ok(());
            }
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::warn!(commitment = c.id(), cause = %e, "cannot settle a checked commitment; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Evaluates `c`'s predicate as its agency would now: the agency still
/// holds the right, the consent still allows the check, and its use is counted.
async fn check(state: &State, c: &StoredCommitment, now: SystemTime, draft: &mut Draft) -> Result<bool, Error> {
    let predicate = predicates::predicate(&c.commitment.predicate)?;
    let agency = state.directory.authorize(&c.agency, &[Role::Requester])?;
    agency.check_rights([predicate.name], &c.commitment.purpose)?;
    let citizen = CitizenId::parse(&c.citizen_id)?;
    let params = c.params.clone().into_iter().collect();
    let call = predicates::check(
        predicate,
        &citizen,
        &params,
        &state.thresholds,
        predicates::day_in_china(now),
    )?;
    let scope = [predicate.name];
    let asked = Use {
        caller: &c.agency,
        citizen: &citizen,
        scopes: &scope,
        purpose: &c.commitment.purpose,
        now,
    };
    state.consent_allows(&c.consent_id, asked).await?;
    let outcome = predicates::evaluate_checked(call, &state.departments, &state.thresholds).await?;
    state.take_use(&c.consent_id, asked, draft).await?;
    draft.related(state, &outcome.related);
    Ok(outcome.satisfied)
}
