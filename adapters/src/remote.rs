//! The remote adapter: a department's own system, called over mTLS through
//! `DepartmentSourceService.Fetch`. One reused HTTP/2 channel per source, a
//! deadline per call, a bound on calls in flight, and a circuit breaker that
//! stops sending to a dead source and probes it back. Answers are checked
//! against the catalogue before anything is passed on. The source's
//! certificate must name its department ([`connect`]).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use civex_proto::v1::{Fact, FetchRequest, department_source_service_client::DepartmentSourceServiceClient};
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

use self::connect::Connector;

use crate::{Adapter, AdapterError, Attribute, Department, value};

mod connect;

/// How a remote source is reached.
#[derive(Debug, Clone)]
pub struct RemoteAdapterConfig {
    /// `https://host:port`.
    pub endpoint: String,
    /// PEM: the CA the source's certificate chains to, and the gateway's own client identity.
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Deadline of one call.
    pub deadline: Duration,
    /// Calls in flight at most; more wait (within their deadline).
    pub max_in_flight: usize,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses before letting one probe through.
    pub open_for: Duration,
}

/// Closed → (failures) → Open → (after `open_for`) → one probe → Closed or Open again.
#[derive(Debug)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

/// A department source reached over the network.
pub struct RemoteAdapter {
    department: Department,
    client: DepartmentSourceServiceClient<Channel>,
    in_flight: Arc<Semaphore>,
    circuit: Mutex<Circuit>,
    config: RemoteAdapterConfig,
}

impl RemoteAdapter {
    /// Prepares the (lazily connected, reused) channel; nothing is sent yet.
    pub fn new(department: Department, config: RemoteAdapterConfig) -> Result<RemoteAdapter, AdapterError> {
        let unavailable = |cause: String| AdapterError::Unavailable { department, cause };
        let connector = Connector::new(department, &config.ca_pem, &config.cert_pem, &config.key_pem)
            .map_err(|e| unavailable(format!("TLS for {}: {e}", config.endpoint)))?;
        // The connector speaks TLS itself; tonic refuses an `https` URI it
        // does not secure on its own, so the channel is told `http`.
        let plain = config
            .endpoint
            .strip_prefix("https://")
            .map(|rest| format!("http://{rest}"))
            .ok_or_else(|| unavailable(format!("endpoint {} is not https://", config.endpoint)))?;
        let channel = Endpoint::from_shared(plain)
            .map_err(|e| unavailable(format!("bad endpoint {}: {e}", config.endpoint)))?
            .connect_timeout(config.deadline)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_with_connector_lazy(connector);
        Ok(RemoteAdapter {
            department,
            client: DepartmentSourceServiceClient::new(channel),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
            config,
        })
    }

    fn unavailable(&self, cause: impl Into<String>) -> AdapterError {
        AdapterError::Unavailable {
            department: self.department,
            cause: cause.into(),
        }
    }

    /// Whether a call may go out now; an open circuit lets one probe through once it has cooled down.
    fn admit(&self) -> Result<(), AdapterError> {
        let mut circuit = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        match *circuit {
            Circuit::Closed { .. } => Ok(()),
            Circuit::Open { until } if Instant::now() >= until => {
                *circuit = Circuit::Probing;
                Ok(())
            }
            Circuit::Open { .. } | Circuit::Probing => Err(self.unavailable("circuit open after repeated failures")),
        }
    }

    fn record(&self, ok: bool) {
        let mut circuit = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        *circuit = match (&*circuit, ok) {
            (_, true) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, false) if failures + 1 < self.config.failure_threshold => {
                Circuit::Closed { failures: failures + 1 }
            }
            (_, false) => {
                tracing::warn!(department = %self.department, "source circuit opened");
                Circuit::Open {
                    until: Instant::now() + self.config.open_for,
                }
            }
        };
    }

    async fn call(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, AdapterError> {
        let started = Instant::now();
        let _slot = tokio::time::timeout(self.config.deadline, self.in_flight.clone().acquire_owned())
            .await
            .map_err(|_| self.unavailable("too many calls in flight"))?
            .map_err(|_| self.unavailable("closed"))?;
        let left = self.config.deadline.saturating_sub(started.elapsed());
        let mut request = tonic::Request::new(FetchRequest {
            citizen_id: citizen_id.to_owned(),
            attributes: attributes.iter().map(|a| a.name.to_owned()).collect(),
        });
        request.set_timeout(left);
        let mut client = self.client.clone();
        let response = tokio::time::timeout(left, client.fetch(request))
            .await
            .map_err(|_| self.unavailable(format!("no answer within {:?}", self.config.deadline)))?
            // A source's message may repeat the ID it was asked about: only its code is kept.
            .map_err(|status| self.unavailable(format!("the source answered {:?}", status.code())))?
            .into_inner();
        if response.citizen_id != citizen_id {
            return Err(self.misbehaving("answered about another citizen"));
        }
        check_answer(self.department, attributes, response.facts).map_err(|cause| self.misbehaving(&cause))
    }

    fn misbehaving(&self, cause: &str) -> AdapterError {
        tracing::error!(department = %self.department, %cause, "source answer refused");
        self.unavailable(format!("answer refused: {cause}"))
    }
}

/// Checks a source's answer: exactly the asked attributes, in any order, each
/// once, from this department, with values of the catalogue's type. Returns
/// them in the order asked.
pub fn check_answer(
    department: Department,
    attributes: &[&'static Attribute],
    facts: Vec<Fact>,
) -> Result<Vec<Fact>, String> {
    if facts.len() != attributes.len() {
        return Err(format!("{} facts for {} asked", facts.len(), attributes.len()));
    }
    let mut ordered: Vec<Option<Fact>> = vec![None; attributes.len()];
    for mut fact in facts {
        let slot = attributes
            .iter()
            .position(|a| a.name == fact.attribute)
            .ok_or_else(|| {
                format!(
                    "unasked or unknown attribute {:?}",
                    fact.attribute.chars().take(80).collect::<String>()
                )
            })?;
        if ordered[slot].is_some() {
            return Err(format!("{} answered twice", fact.attribute));
        }
        let attribute = attributes[slot];
        match (&fact.value, fact.recorded) {
            (Some(v), true) => {
                value::from_wire(attribute.value_type, v).map_err(|e| format!("{}: {e}", attribute.name))?;
            }
            (None, false) => {}
            _ => return Err(format!("{}: `recorded` disagrees with the value", attribute.name)),
        }
        fact.source = department.code().to_owned();
        ordered[slot] = Some(fact);
    }
    Ok(ordered.into_iter().flatten().collect())
}

#[async_trait]
impl Adapter for RemoteAdapter {
    fn department(&self) -> Department {
        self.department
    }

    fn circuit_open(&self) -> Option<bool> {
        let circuit = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        Some(!matches!(*circuit, Circuit::Closed { .. }))
    }

    async fn fetch(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, AdapterError> {
        self.admit()?;
        let result = self.call(citizen_id, attributes).await;
        self.record(result.is_ok());
        result
    }
}

#[cfg(test)]
mod tests {
    use civex_proto::v1::fact;

    use super::*;
    use crate::catalogue;

    fn fact(name: &str, value: Option<fact::Value>) -> Fact {
        Fact {
            attribute: name.into(),
            recorded: value.is_some(),
            value,
            source: "x".into(),
            as_of: None,
        }
    }

    #[test]
    fn answers_are_checked_against_the_catalogue() {
        let asked = [
            catalogue::attribute("tax.registered").unwrap(),
            catalogue::attribute("tax.iit.months_paid_last_12").unwrap(),
        ];
        let good = vec![
            fact("tax.iit.months_paid_last_12", Some(fact::Value::IntValue(7))),
            fact("tax.registered", None),
        ];
        let ordered = check_answer(Department::Tax, &asked, good).unwrap();
        assert_eq!(ordered[0].attribute, "tax.registered");
        assert_eq!(ordered[1].source, "tax");
        let cases: Vec<(&str, Vec<Fact>)> = vec![
            ("missing", vec![fact("tax.registered", None)]),
            ("unknown", vec![fact("tax.registered", None), fact("tax.secret", None)]),
            (
                "twice",
                vec![fact("tax.registered", None), fact("tax.registered", None)],
            ),
            (
                "wrong type",
                vec![
                    fact("tax.registered", Some(fact::Value::TextValue("yes".into()))),
                    fact("tax.iit.months_paid_last_12", None),
                ],
            ),
            (
                "recorded without value",
                vec![
                    Fact {
                        recorded: true,
                        ..fact("tax.registered", None)
                    },
                    fact("tax.iit.months_paid_last_12", None),
                ],
            ),
        ];
        for (name, facts) in cases {
            assert!(check_answer(Department::Tax, &asked, facts).is_err(), "{name} accepted");
        }
    }
}
