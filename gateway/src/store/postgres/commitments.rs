//! Commitments in the deployment's database. The state and settling time
//! are columns of their own, so that settling is one conditional `UPDATE`
//! (`WHERE state = PENDING`) and a claim another (`WHERE claimed_until <
//! now`): of gateways sharing the store, one verifies each commitment.

use std::time::SystemTime;

use async_trait::async_trait;
use civex_proto::v1::CommitmentState;
use tokio_postgres::Row;

use super::{
    Db, failed,
    state::{from_nanos, nanos},
};
use crate::{
    clock::{system_time, timestamp},
    store::{CommitmentFilter, CommitmentStore, StoreError, StoredCommitment},
};

pub struct PgCommitments(pub(crate) Db);

const PENDING: i32 = CommitmentState::CommitmentPending as i32;
const FALSE: i32 = CommitmentState::CommitmentFalse as i32;

/// A commitment from its row: `body, state, settled_at`.
fn commitment(row: &Row) -> Result<StoredCommitment, StoreError> {
    let mut c: StoredCommitment = serde_json::from_str(row.get::<_, &str>(0))
        .map_err(|e| StoreError(failed(format!("stored commitment: {e}"))))?;
    c.commitment.state = row.get(1);
    c.commitment.settled_at = row.get::<_, Option<i64>>(2).map(|n| timestamp(from_nanos(n)));
    Ok(c)
}

fn rows(rows: Vec<Row>) -> Result<Vec<StoredCommitment>, StoreError> {
    rows.iter().map(commitment).collect()
}

fn at(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().and_then(system_time).map_or(0, nanos)
}

#[async_trait]
impl CommitmentStore for PgCommitments {
    async fn insert(&self, c: &StoredCommitment) -> Result<(), StoreError> {
        let body = serde_json::to_string(c).map_err(StoreError::new)?;
        self.0
            .query(
                "INSERT INTO civex_commitments (id, agency, citizen_ref, recorded_at, verify_after, state, \
                 settled_at, claimed_until, body) VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, $7)",
                vec![
                    Box::new(c.id().to_owned()),
                    Box::new(c.agency.clone()),
                    Box::new(c.citizen_ref.clone()),
                    Box::new(at(&c.commitment.recorded_at)),
                    Box::new(at(&c.commitment.verify_after)),
                    Box::new(c.commitment.state),
                    Box::new(body),
                ],
            )
            .await
            .map_err(StoreError)?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredCommitment>, StoreError> {
        let found = self
            .0
            .query(
                "SELECT body, state, settled_at FROM civex_commitments WHERE id = $1",
                vec![Box::new(id.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        found.first().map(commitment).transpose()
    }

    async fn list(
        &self,
        agency: &str,
        filter: CommitmentFilter,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCommitment>, StoreError> {
        // State 0 (unspecified) stands for any.
        let state = filter.state.map_or(0, |s| s as i32);
        let found = self
            .0
            .query(
                "SELECT body, state, settled_at FROM civex_commitments WHERE agency = $1 AND id > $2 \
                 AND recorded_at >= $3 AND ($4 = 0 OR state = $4) ORDER BY id LIMIT $5",
                vec![
                    Box::new(agency.to_owned()),
                    Box::new(after.to_owned()),
                    Box::new(nanos(filter.since)),
                    Box::new(state),
                    Box::new(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(StoreError)?;
        rows(found)
    }

    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<StoredCommitment>, StoreError> {
        let found = self
            .0
            .query(
                "SELECT body, state, settled_at FROM civex_commitments WHERE state = $1 AND verify_after <= $2 \
                 AND claimed_until <= $2 ORDER BY verify_after, id LIMIT $3",
                vec![
                    Box::new(PENDING),
                    Box::new(nanos(now)),
                    Box::new(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(StoreError)?;
        rows(found)
    }

    async fn claim(&self, id: &str, now: SystemTime, until: SystemTime) -> Result<bool, StoreError> {
        let claimed = self
            .0
            .query(
                "UPDATE civex_commitments SET claimed_until = $3 WHERE id = $1 AND state = $4 \
                 AND claimed_until <= $2 RETURNING id",
                vec![
                    Box::new(id.to_owned()),
                    Box::new(nanos(now)),
                    Box::new(nanos(until)),
                    Box::new(PENDING),
                ],
            )
            .await
            .map_err(StoreError)?;
        Ok(!claimed.is_empty())
    }

    async fn settle(&self, id: &str, state: CommitmentState, at: SystemTime) -> Result<bool, StoreError> {
        let settled = self
            .0
            .query(
                "UPDATE civex_commitments SET state = $2, settled_at = $3 WHERE id = $1 AND state = $4 RETURNING id",
                vec![
                    Box::new(id.to_owned()),
                    Box::new(state as i32),
                    Box::new(nanos(at)),
                    Box::new(PENDING),
                ],
            )
            .await
            .map_err(StoreError)?;
        Ok(!settled.is_empty())
    }

    async fn found_false(&self, agency: &str, citizen_ref: &str) -> Result<bool, StoreError> {
        let found = self
            .0
            .query(
                "SELECT 1 FROM civex_commitments WHERE citizen_ref = $1 AND state = $2 AND agency = $3 LIMIT 1",
                vec![
                    Box::new(citizen_ref.to_owned()),
                    Box::new(FALSE),
                    Box::new(agency.to_owned()),
                ],
            )
            .await
            .map_err(StoreError)?;
        Ok(!found.is_empty())
    }
}
