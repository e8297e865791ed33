//! The certificates departments used to demand and what answers each now
//! (证明事项清理, DESIGN §15; `CERTIFICATES.md`): the question a department's
//! integrator asks first — "we used to demand X; what do we call now?" —
//! answered by `ExchangeService.ListAttributes` (`Catalogue.certificates`)
//! and `civex catalogue --certificates`.
//!
//! Every name in [`Certificate::answered_by`] is a predicate or a served
//! attribute of this gateway's catalogue (checked by the tests below). Where
//! the table in `CERTIFICATES.md` gives several statuses, [`Certificate::status`]
//! is the first and the note names the others.

use super::predicates;
use civex_adapters::catalogue;

/// What became of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No longer issued and never to be demanded (`CERT_ABOLISHED`).
    Abolished,
    /// Answered by sharing or the agency's own check (`CERT_REPLACED_BY_SHARING`).
    ReplacedBySharing,
    /// Notification and commitment with later verification (`CERT_COMMITMENT`).
    Commitment,
    /// Still issued, for narrower cases (`CERT_STILL_ISSUED`).
    StillIssued,
}

/// One certificate of the clean-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate {
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// Who used to issue it.
    pub holder: &'static str,
    pub status: Status,
    /// Predicates and attributes that answer it; empty when nothing does.
    pub answered_by: &'static [&'static str],
    /// The documents that abolished or replaced it.
    pub basis: &'static str,
    pub note: &'static str,
}

use Status::*;

const fn row(
    name_zh: &'static str,
    name_en: &'static str,
    holder: &'static str,
    status: Status,
    answered_by: &'static [&'static str],
    basis: &'static str,
    note: &'static str,
) -> Certificate {
    Certificate {
        name_zh,
        name_en,
        holder,
        status,
        answered_by,
        basis,
        note,
    }
}

/// Every certificate of `CERTIFICATES.md`, in its order.
pub static CERTIFICATES: &[Certificate] = &[
    row(
        "户口性质证明",
        "household type (agricultural / non-agricultural)",
        "police station",
        Abolished,
        &[],
        "曲政发〔2015〕82号（十）",
        "Abolished outright with the household type itself: nothing answers it. ps.hukou.nature is refused \
         ATTRIBUTE_ABOLISHED and every such request raises an abolished_request alert.",
    ),
    row(
        "户籍证明 / 居民身份信息证明",
        "household registration, identity",
        "police station; village and residents' committees no longer",
        Abolished,
        &[
            "ps.identity.birth_date",
            "ps.identity.gender",
            "ps.hukou.division",
            predicates::HUKOU_REGISTERED_IN,
        ],
        "公通字〔2016〕21号；民发〔2020〕20号",
        "Abolished as a certificate: what it proved is shared (also S).",
    ),
    row(
        "户口迁移证明 / 注销证明",
        "registration transfer, cancellation",
        "police station",
        StillIssued,
        &[
            "ps.hukou.moved_in_on",
            "ps.hukou.moved_from",
            "ps.hukou.cancelled",
            "ps.hukou.cancelled_on",
        ],
        "公通字〔2016〕21号",
        "Still issued for moves between provinces; within sharing, the status and dates are shared (also S).",
    ),
    row(
        "亲属关系证明",
        "kinship",
        "police station; village and residents' committees no longer",
        StillIssued,
        &[predicates::KIN_RELATED],
        "公通字〔2016〕21号；民发〔2020〕20号",
        "Police stations still certify kinship that household registration does not record (one of nine \
         cases); what it records is checked with the relative's consent too (also S; C for some \
         household-registration services).",
    ),
    row(
        "婚姻状况证明",
        "marital status",
        "civil affairs (stopped 2015); village and residents' committees no longer",
        Abolished,
        &["ca.marital_status", predicates::CA_UNMARRIED],
        "公通字〔2016〕21号；民发〔2020〕20号",
        "The department checks marital status itself (also S, C).",
    ),
    row(
        "无犯罪记录证明",
        "no criminal record",
        "police (national system since 2021)",
        StillIssued,
        &[predicates::PS_NO_CRIMINAL_RECORD],
        "公通字〔2021〕19号；民发〔2020〕20号",
        "Only where a law bars hiring people with convictions (purpose employment.restricted_post); the \
         record itself (ps.criminal_record.convicted) is never served.",
    ),
    row(
        "居住证明",
        "residence",
        "police station; village and residents' committees no longer",
        ReplacedBySharing,
        &[
            "ps.residence.division",
            "ps.residence.since",
            predicates::RESIDENCE_MONTHS_AT_LEAST,
        ],
        "公通字〔2016〕21号；民发〔2020〕20号",
        "",
    ),
    row(
        "合法稳定住所证明",
        "legal stable residence",
        "housing and real-estate registry",
        ReplacedBySharing,
        &[predicates::HOUSING_STABLE_RESIDENCE],
        "曲政发〔2015〕82号（四）；国办发〔2018〕47号",
        "An owned home or a registered lease (also C).",
    ),
    row(
        "合法稳定就业证明",
        "legal stable employment",
        "employer, market regulator, human resources and social security",
        ReplacedBySharing,
        &[predicates::HRSS_STABLE_EMPLOYMENT],
        "曲政发〔2015〕82号（四）；国办发〔2018〕47号",
        "Registered employment; a business licence is the market regulator's record, which no department \
         of this gateway holds (also C).",
    ),
    row(
        "就业 / 失业证明",
        "employment status",
        "human resources and social security; village and residents' committees no longer",
        Abolished,
        &["hrss.employment.registered", "hrss.unemployment.registered"],
        "民发〔2020〕20号；国办发〔2018〕47号",
        "Also S.",
    ),
    row(
        "社保缴费证明",
        "social-insurance record",
        "human resources and social security",
        ReplacedBySharing,
        &[
            "hrss.pension.contribution_years",
            "hrss.medical.contribution_years",
            "hrss.pension.continuous_months",
            predicates::HRSS_CONTRIBUTING,
        ],
        "国办发〔2018〕47号",
        "Commitment piloted in places.",
    ),
    row(
        "学籍 / 在读证明",
        "school enrolment",
        "education",
        ReplacedBySharing,
        &["edu.enrolled", "edu.schooling_since"],
        "国办发〔2018〕47号",
        "",
    ),
    row(
        "随迁子女入学材料",
        "migrant child's school bundle",
        "police, human resources and social security, housing, township of origin",
        ReplacedBySharing,
        &[predicates::EXAM_ACCOMPANYING_CHILD],
        "曲政发〔2015〕82号（十二）（十六）",
        "The parent's permit, insurance and the child's years of schooling in one answer.",
    ),
    row(
        "户籍地无监护条件证明",
        "no guardian at the place of origin",
        "township of origin",
        Commitment,
        &[],
        "国办发〔2020〕42号",
        "No register holds it: the applicant's signed commitment (CommitmentService.Record), checked \
         later by the agency (a visit, a notice).",
    ),
    row(
        "无房证明",
        "no property",
        "real-estate registry",
        ReplacedBySharing,
        &[predicates::HOUSING_OWNS_NONE],
        "国办发〔2018〕47号",
        "Never where a dwelling lies (also C).",
    ),
    row(
        "收入 / 财产证明",
        "income and assets (minimum living allowance, housing guarantee)",
        "village and residents' committees, now the means-test centre",
        Abolished,
        &[predicates::CA_MEANS_TEST],
        "民发〔2020〕20号；《社会救助暂行办法》（国务院令第649号）第十一条",
        "The program's standards are set in [predicates.means_test] (also S).",
    ),
    row(
        "低保 / 救助对象证明",
        "receives assistance",
        "civil affairs",
        ReplacedBySharing,
        &["ca.dibao.receiving", "ca.assistance.receiving"],
        "国办发〔2018〕47号",
        "",
    ),
    row(
        "健在 / 死亡证明",
        "alive, deceased",
        "health, police; village and residents' committees no longer",
        Abolished,
        &[predicates::PS_ALIVE],
        "民发〔2020〕20号；公通字〔2016〕21号",
        "Also S.",
    ),
    row(
        "承包地 / 宅基地证明",
        "land contract, homestead",
        "natural resources, agriculture",
        ReplacedBySharing,
        &[
            "land.contract_rights.held",
            "land.homestead_rights.held",
            "land.rights.division",
            "land.rights.certified",
        ],
        "曲政发〔2015〕82号（八）（十五）",
        "Only for moving back to the rural place of origin (hukou.return_rural); never a condition of \
         settling in a town (clause 十五).",
    ),
    row(
        "集体经济组织成员证明",
        "collective economic organisation membership",
        "village collective",
        Commitment,
        &[],
        "国办发〔2020〕42号；曲政发〔2015〕82号（十五）",
        "No rule yet defines membership (clause 十五 asks for one), so no register holds it: the \
         applicant's signed commitment (CommitmentService.Record).",
    ),
    row(
        "纳税证明",
        "tax paid",
        "tax",
        ReplacedBySharing,
        &["tax.iit.months_paid_last_12"],
        "国办发〔2018〕47号",
        "",
    ),
    row(
        "残疾状况证明",
        "disability",
        "disabled persons' federation",
        Abolished,
        &[],
        "民发〔2020〕20号",
        "Village and residents' committees no longer issue it; the disability register is the federation's, \
         which this gateway does not reach, so nothing answers it here.",
    ),
];

/// Whether `name` is something a caller can ask for: a predicate, or an
/// attribute that is served.
pub fn answers(name: &str) -> bool {
    predicates::predicate(name).is_ok() || catalogue::attribute(name).is_some_and(|a| a.served())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_exists_and_household_type_answers_nothing() {
        assert_eq!(CERTIFICATES.len(), 22);
        for c in CERTIFICATES {
            for name in c.answered_by {
                assert!(
                    answers(name),
                    "{}: {name} is neither a predicate nor a served attribute",
                    c.name_zh
                );
            }
            assert!(!c.basis.is_empty(), "{}", c.name_zh);
            let unanswered = c.answered_by.is_empty();
            assert!(
                !unanswered || !c.note.is_empty(),
                "{}: a certificate nothing answers says why",
                c.name_zh
            );
            assert!(
                !unanswered || matches!(c.status, Abolished | Commitment),
                "{}: a shared or still issued certificate has an answer",
                c.name_zh
            );
        }
        let household_type = &CERTIFICATES[0];
        assert_eq!(household_type.name_zh, "户口性质证明");
        assert_eq!(household_type.status, Abolished);
        assert!(household_type.answered_by.is_empty());
        assert!(!answers(catalogue::HOUSEHOLD_NATURE));
        assert!(!answers(catalogue::CRIMINAL_RECORD));
    }

    #[test]
    fn every_certificate_check_answers_a_certificate() {
        for name in [
            predicates::HUKOU_REGISTERED_IN,
            predicates::KIN_RELATED,
            predicates::CA_UNMARRIED,
            predicates::RESIDENCE_MONTHS_AT_LEAST,
            predicates::HOUSING_STABLE_RESIDENCE,
            predicates::HRSS_STABLE_EMPLOYMENT,
            predicates::HRSS_CONTRIBUTING,
            predicates::HOUSING_OWNS_NONE,
            predicates::PS_ALIVE,
            predicates::PS_NO_CRIMINAL_RECORD,
            predicates::CA_MEANS_TEST,
        ] {
            assert!(
                CERTIFICATES.iter().any(|c| c.answered_by.contains(&name)),
                "{name} answers no certificate"
            );
        }
    }
}
