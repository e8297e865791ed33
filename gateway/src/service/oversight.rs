//! `OversightService` (role `auditor`): the alerts the rules raised, the
//! watch list, and cases. Every call is an audit record with the caller's
//! operator; every change takes effect only once that record is durable.

use std::sync::Arc;

use civex_adapters::CitizenId;
use civex_proto::v1::{
    Alert, AlertState, Case, CaseEvent, CaseState, DismissAlertRequest, Disposition, GetAlertRequest, GetCaseRequest,
    ListAlertsRequest, ListAlertsResponse, ListCasesRequest, ListCasesResponse, ListWatchedRequest,
    ListWatchedResponse, OpenCaseRequest, UnwatchCitizenRequest, UpdateCaseRequest, WatchCitizenRequest, WatchEntry,
    oversight_service_server::OversightService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use crate::{
    clock::{system_time, timestamp},
    error::{Error, Reason},
    oversight::rules::Rule,
    policy::{access::Role, labels::check_label},
};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Alerts or cases one list call looks at before handing back a token.
const SCAN_BUDGET: usize = 10_000;
/// How often a case change is tried again when another auditor changed the case first.
const CASE_TRIES: usize = 5;

#[derive(Clone)]
pub struct Oversight {
    state: Arc<State>,
}

fn page_size(size: u32) -> usize {
    match size as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

fn not_found(reason: Reason, what: &str, id: &str) -> Error {
    Error::new(reason, format!("no {what} {}", crate::policy::labels::logged_label(id)))
}

fn changed_meanwhile() -> Error {
    Error::new(
        Reason::InvalidRequest,
        "an alert changed meanwhile (another auditor put it in a case or dismissed it): read it again",
    )
}

/// The official making the call, as case events name them.
fn actor(draft: &Draft) -> String {
    let (agency, operator) = draft.official();
    format!("{agency}/{operator}")
}

impl Oversight {
    pub fn new(state: Arc<State>) -> Oversight {
        Oversight { state }
    }

    fn store(&self) -> &dyn crate::store::OversightStore {
        self.state.oversight.as_ref()
    }

    async fn get_alert(&self, id: &str, draft: &mut Draft) -> Result<Alert, Error> {
        check_label("alert_id", id)?;
        draft.subject_label(id);
        self.store()
            .alert(id)
            .await?
            .ok_or_else(|| not_found(Reason::AlertNotFound, "alert", id))
    }

    async fn get_case(&self, id: &str, draft: &mut Draft) -> Result<Case, Error> {
        check_label("case_id", id)?;
        draft.subject_label(id);
        self.store()
            .case(id)
            .await?
            .ok_or_else(|| not_found(Reason::CaseNotFound, "case", id))
    }

    async fn list_alerts(&self, req: ListAlertsRequest) -> Result<ListAlertsResponse, Error> {
        for (field, value) in [
            ("agency", &req.agency),
            ("operator", &req.operator),
            ("page_token", &req.page_token),
        ] {
            check_label(field, value)?;
        }
        if !req.rule.is_empty() && Rule::parse(&req.rule).is_none() {
            return Err(Error::new(Reason::InvalidRequest, "unknown rule"));
        }
        let state = AlertState::try_from(req.state).map_err(|_| Error::new(Reason::InvalidRequest, "unknown state"))?;
        let time = |t: &Option<prost_types::Timestamp>, field: &str| match t {
            None => Ok(None),
            Some(t) => system_time(t)
                .map(Some)
                .ok_or_else(|| Error::new(Reason::InvalidRequest, format!("{field} is not a valid time"))),
        };
        let (since, until) = (time(&req.since, "since")?, time(&req.until, "until")?);
        let matches = |a: &Alert| {
            let opened = a.opened_at.as_ref().and_then(system_time);
            (state == AlertState::Unspecified || a.state == state as i32)
                && (req.rule.is_empty() || a.rule == req.rule)
                && (req.agency.is_empty() || a.agency == req.agency)
                && (req.operator.is_empty() || a.operator == req.operator)
                && since.is_none_or(|s| opened.is_some_and(|o| o >= s))
                && until.is_none_or(|u| opened.is_some_and(|o| o < u))
        };
        let evaluated = self.store().evaluated().await?;
        let (alerts, next) = page(
            req.page_token,
            page_size(req.page_size),
            |after, n| async move {
                let alerts = self.store().alerts(&after, n).await?;
                Ok(alerts.into_iter().map(|a| (a.alert_id.clone(), a)).collect())
            },
            matches,
        )
        .await?;
        Ok(ListAlertsResponse {
            alerts,
            next_page_token: next,
            evaluated,
        })
    }

    async fn dismiss(&self, req: DismissAlertRequest, draft: &mut Draft) -> Result<Alert, Error> {
        check_label("note", &req.note)?;
        draft.note(&req.note);
        let mut alert = self.get_alert(&req.alert_id, draft).await?;
        if alert.state != AlertState::AlertOpen as i32 {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("alert {} is not open: it is in a case or dismissed", alert.alert_id),
            ));
        }
        self.state.record(draft).await?;
        alert.state = AlertState::AlertDismissed as i32;
        alert.note = req.note;
        if !self.store().set_alerts(std::slice::from_ref(&alert)).await? {
            return Err(changed_meanwhile());
        }
        Ok(alert)
    }

    async fn watch(&self, req: WatchCitizenRequest, draft: &mut Draft) -> Result<WatchEntry, Error> {
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(&self.state, &citizen);
        check_label("note", &req.note)?;
        draft.note(&req.note);
        let entry = WatchEntry {
            citizen_ref: self.state.pseudonyms.citizen_ref(citizen.as_str()),
            note: req.note,
            since: Some(timestamp(self.state.clock.now())),
            added_by: actor(draft),
        };
        self.state.record(draft).await?;
        self.store().watch(&entry).await?;
        Ok(entry)
    }

    async fn unwatch(&self, req: UnwatchCitizenRequest, draft: &mut Draft) -> Result<WatchEntry, Error> {
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(&self.state, &citizen);
        let citizen_ref = self.state.pseudonyms.citizen_ref(citizen.as_str());
        let watched = self.store().watched().await?;
        if !watched.iter().any(|w| w.citizen_ref == citizen_ref) {
            return Err(Error::new(
                Reason::InvalidRequest,
                "the citizen is not on the watch list",
            ));
        }
        self.state.record(draft).await?;
        let removed = self.store().unwatch(&citizen_ref).await?;
        removed.ok_or_else(|| Error::new(Reason::InvalidRequest, "the citizen is not on the watch list"))
    }

    async fn open_case(&self, req: OpenCaseRequest, draft: &mut Draft) -> Result<Case, Error> {
        if req.title.trim().is_empty() {
            return Err(Error::new(Reason::InvalidRequest, "a case needs a title"));
        }
        check_label("title", &req.title)?;
        check_label("assignee", &req.assignee)?;
        draft.note(&req.title);
        if req.alert_ids.is_empty() {
            return Err(Error::new(Reason::InvalidRequest, "a case needs at least one alert"));
        }
        let mut alerts = Vec::new();
        for id in &req.alert_ids {
            let alert = self.get_alert(id, draft).await?;
            if alert.state != AlertState::AlertOpen as i32 {
                return Err(Error::new(
                    Reason::InvalidRequest,
                    format!("alert {id} is not open: it is in a case or dismissed"),
                ));
            }
            if !alerts.iter().any(|a: &Alert| a.alert_id == alert.alert_id) {
                alerts.push(alert);
            }
        }
        if req.all_of_operator {
            // Officials only: an alert about an agency or a certificate names none.
            let officials: Vec<(String, String)> = alerts
                .iter()
                .filter(|a| !a.operator.is_empty())
                .map(|a| (a.agency.clone(), a.operator.clone()))
                .collect();
            let mut after = String::new();
            loop {
                let batch = self.store().alerts(&after, 1000).await?;
                let Some(last) = batch.last() else { break };
                after = last.alert_id.clone();
                for a in batch {
                    if a.state == AlertState::AlertOpen as i32
                        && officials.contains(&(a.agency.clone(), a.operator.clone()))
                        && !alerts.iter().any(|b| b.alert_id == a.alert_id)
                    {
                        alerts.push(a);
                    }
                }
            }
        }
        draft.subject_label(&alerts[0].alert_id);
        let recorded = self.state.record(draft).await?;
        let now = Some(timestamp(self.state.clock.now()));
        let case_id = format!("C{:012}", recorded.index);
        let event = |kind: &str, text: &str| CaseEvent {
            time: now,
            actor: actor(draft),
            kind: kind.to_owned(),
            text: text.to_owned(),
            audit_index: recorded.index,
        };
        let mut events = vec![event("opened", &req.title)];
        if !req.assignee.is_empty() {
            events.push(event("assigned", &req.assignee));
        }
        for a in &mut alerts {
            a.state = AlertState::AlertInCase as i32;
            a.case_id.clone_from(&case_id);
        }
        let case = Case {
            case_id,
            title: req.title,
            state: CaseState::CaseOpen as i32,
            assignee: req.assignee,
            disposition: Disposition::Unspecified as i32,
            alert_ids: alerts.iter().map(|a| a.alert_id.clone()).collect(),
            events,
            opened_at: now,
            closed_at: None,
        };
        if !self.store().put_case(&case, None, &alerts).await? {
            return Err(changed_meanwhile());
        }
        Ok(case)
    }

    async fn update_case(&self, req: UpdateCaseRequest, draft: &mut Draft) -> Result<Case, Error> {
        check_label("case_id", &req.case_id)?;
        draft.subject_label(&req.case_id);
        for (field, value) in [("note", &req.note), ("assignee", &req.assignee)] {
            check_label(field, value)?;
        }
        draft.note(&req.note);
        let state = CaseState::try_from(req.state).map_err(|_| Error::new(Reason::InvalidRequest, "unknown state"))?;
        let disposition = Disposition::try_from(req.disposition)
            .map_err(|_| Error::new(Reason::InvalidRequest, "unknown disposition"))?;
        if state == CaseState::CaseClosed && disposition == Disposition::Unspecified {
            return Err(Error::new(
                Reason::InvalidRequest,
                "closing a case needs a disposition: JUSTIFIED, MISUSE or FALSE_POSITIVE",
            ));
        }
        if disposition != Disposition::Unspecified && state != CaseState::CaseClosed {
            return Err(Error::new(
                Reason::InvalidRequest,
                "a disposition is given when closing the case",
            ));
        }
        if req.note.is_empty() && req.assignee.is_empty() && state == CaseState::Unspecified {
            return Err(Error::new(
                Reason::InvalidRequest,
                "nothing to change: give a note, an assignee or a state",
            ));
        }
        let case = self.get_case(&req.case_id, draft).await?;
        if case.state == CaseState::CaseClosed as i32 {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("case {} is closed", case.case_id),
            ));
        }
        let recorded = self.state.record(draft).await?;
        let mut case = case;
        for _ in 0..CASE_TRIES {
            let before = case.events.len();
            let now = Some(timestamp(self.state.clock.now()));
            let event = |kind: &str, text: &str| CaseEvent {
                time: now,
                actor: actor(draft),
                kind: kind.to_owned(),
                text: text.to_owned(),
                audit_index: recorded.index,
            };
            if !req.note.is_empty() {
                case.events.push(event("note", &req.note));
            }
            if !req.assignee.is_empty() {
                case.assignee.clone_from(&req.assignee);
                case.events.push(event("assigned", &req.assignee));
            }
            match state {
                CaseState::Unspecified => {}
                CaseState::CaseClosed => {
                    case.state = state as i32;
                    case.disposition = disposition as i32;
                    case.closed_at = now;
                    case.events.push(event("closed", disposition.as_str_name()));
                }
                _ => {
                    case.state = state as i32;
                    case.events.push(event("state", state.as_str_name()));
                }
            }
            if self.store().put_case(&case, Some(before), &[]).await? {
                return Ok(case);
            }
            // Another auditor changed it since: apply this change to theirs.
            case = self
                .store()
                .case(&req.case_id)
                .await?
                .ok_or_else(|| not_found(Reason::CaseNotFound, "case", &req.case_id))?;
            if case.state == CaseState::CaseClosed as i32 {
                return Err(Error::new(
                    Reason::InvalidRequest,
                    format!("case {} was closed meanwhile", case.case_id),
                ));
            }
        }
        Err(Error::new(
            Reason::AuditUnavailable,
            "the case kept changing under this call; its record stands, try again",
        ))
    }

    async fn list_cases(&self, req: ListCasesRequest) -> Result<ListCasesResponse, Error> {
        check_label("assignee", &req.assignee)?;
        check_label("page_token", &req.page_token)?;
        let state = CaseState::try_from(req.state).map_err(|_| Error::new(Reason::InvalidRequest, "unknown state"))?;
        let matches = |c: &Case| {
            (state == CaseState::Unspecified || c.state == state as i32)
                && (req.assignee.is_empty() || c.assignee == req.assignee)
        };
        let (cases, next) = page(
            req.page_token,
            page_size(req.page_size),
            |after, n| async move {
                let cases = self.store().cases(&after, n).await?;
                Ok(cases.into_iter().map(|c| (c.case_id.clone(), c)).collect())
            },
            matches,
        )
        .await?;
        Ok(ListCasesResponse {
            cases,
            next_page_token: next,
        })
    }
}

/// One page of what `fetch` returns in id order from after `token`, those
/// that `matches`; and the token to go on from, empty at the end.
async fn page<T, F, Fut>(
    token: String,
    size: usize,
    fetch: F,
    matches: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, String), Error>
where
    F: Fn(String, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, T)>, Error>>,
{
    let (mut found, mut after, mut scanned) = (Vec::new(), token, 0);
    loop {
        let batch = fetch(after.clone(), 500).await?;
        let end = batch.len() < 500;
        for (id, item) in batch {
            scanned += 1;
            after = id;
            if matches(&item) {
                found.push(item);
                if found.len() == size {
                    return Ok((found, after));
                }
            }
        }
        if end {
            return Ok((found, String::new()));
        }
        if scanned >= SCAN_BUDGET {
            return Ok((found, after));
        }
    }
}

#[tonic::async_trait]
impl OversightService for Oversight {
    async fn list_alerts(&self, request: Request<ListAlertsRequest>) -> Result<Response<ListAlertsResponse>, Status> {
        self.state
            .answer(request, "OversightService/ListAlerts", async |request, _| {
                self.state.caller(&request, &[Role::Auditor])?;
                Oversight::list_alerts(self, request.into_inner()).await
            })
            .await
    }

    async fn get_alert(&self, request: Request<GetAlertRequest>) -> Result<Response<Alert>, Status> {
        self.state
            .answer(request, "OversightService/GetAlert", async |request, draft| {
                self.state.caller(&request, &[Role::Auditor])?;
                Oversight::get_alert(self, &request.into_inner().alert_id, draft).await
            })
            .await
    }

    async fn dismiss_alert(&self, request: Request<DismissAlertRequest>) -> Result<Response<Alert>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "OversightService/DismissAlert", async |request, draft| {
                    this.state.caller(&request, &[Role::Auditor])?;
                    this.dismiss(request.into_inner(), draft).await
                })
                .await
        })
        .await
    }

    async fn watch_citizen(&self, request: Request<WatchCitizenRequest>) -> Result<Response<WatchEntry>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "OversightService/WatchCitizen", async |request, draft| {
                    this.state.caller(&request, &[Role::Auditor])?;
                    this.watch(request.into_inner(), draft).await
                })
                .await
        })
        .await
    }

    async fn unwatch_citizen(&self, request: Request<UnwatchCitizenRequest>) -> Result<Response<WatchEntry>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "OversightService/UnwatchCitizen", async |request, draft| {
                    this.state.caller(&request, &[Role::Auditor])?;
                    this.unwatch(request.into_inner(), draft).await
                })
                .await
        })
        .await
    }

    async fn list_watched(
        &self,
        request: Request<ListWatchedRequest>,
    ) -> Result<Response<ListWatchedResponse>, Status> {
        self.state
            .answer(request, "OversightService/ListWatched", async |request, _| {
                self.state.caller(&request, &[Role::Auditor])?;
                Ok(ListWatchedResponse {
                    entries: self.store().watched().await?,
                })
            })
            .await
    }

    async fn open_case(&self, request: Request<OpenCaseRequest>) -> Result<Response<Case>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "OversightService/OpenCase", async |request, draft| {
                    this.state.caller(&request, &[Role::Auditor])?;
                    this.open_case(request.into_inner(), draft).await
                })
                .await
        })
        .await
    }

    async fn update_case(&self, request: Request<UpdateCaseRequest>) -> Result<Response<Case>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "OversightService/UpdateCase", async |request, draft| {
                    this.state.caller(&request, &[Role::Auditor])?;
                    this.update_case(request.into_inner(), draft).await
                })
                .await
        })
        .await
    }

    async fn get_case(&self, request: Request<GetCaseRequest>) -> Result<Response<Case>, Status> {
        self.state
            .answer(request, "OversightService/GetCase", async |request, draft| {
                self.state.caller(&request, &[Role::Auditor])?;
                Oversight::get_case(self, &request.into_inner().case_id, draft).await
            })
            .await
    }

    async fn list_cases(&self, request: Request<ListCasesRequest>) -> Result<Response<ListCasesResponse>, Status> {
        self.state
            .answer(request, "OversightService/ListCases", async |request, _| {
                self.state.caller(&request, &[Role::Auditor])?;
                Oversight::list_cases(self, request.into_inner()).await
            })
            .await
    }
}
