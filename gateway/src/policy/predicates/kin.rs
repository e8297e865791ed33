//! `kin.related`: the kinship certificate (亲属关系证明), which police
//! stations and village committees no longer issue for facts household
//! registration already records (公通字〔2016〕21号, 民发〔2020〕20号).

use civex_adapters::citizen_id::CitizenId;
use futures::future::try_join;
use time::Date;

use super::{
    facts::{RELATION_FACTS, Reader, SPOUSE, Verdict, condition, single},
    join_kin::{lineal, parents},
};
use crate::error::Error;

const CLOSE_RELATIVES: [&str; 2] = ["近亲属关系", "close relation"];

/// Holds if the two are close relatives (近亲属, Civil Code art. 1045):
/// spouses, parent and child, siblings (a recorded father or mother in
/// common), grandparent and grandchild on either side, as household
/// registration records them. Which of these it is stays the two people's
/// own: the answer says only that they are close relatives. The relative
/// consents too (`related_consent_ids`), as for `settlement.join_kin`.
pub(super) async fn related(
    r: &Reader<'_>,
    applicant: &CitizenId,
    relative: &CitizenId,
    today: Date,
) -> Result<Verdict, Error> {
    let (a, b) = try_join(r.facts(applicant, RELATION_FACTS), r.facts(relative, RELATION_FACTS)).await?;
    let spouses = a.names(SPOUSE, relative) || b.names(SPOUSE, applicant);
    let their_parents = parents(&b, today);
    let siblings = parents(&a, today).iter().any(|p| their_parents.contains(p));
    let related = spouses || siblings || lineal(r, (applicant, &a), (relative, &b), today).await?;
    Ok(single(condition(
        related,
        CLOSE_RELATIVES,
        "双方是《民法典》第一千零四十五条所称近亲属",
        "the two are close relatives as Civil Code article 1045 defines them",
    )))
}
