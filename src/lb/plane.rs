//! A load balancer's data plane: an agent container on a host of its
//! location (adopted when one is running, else made), or, without a host
//! (unit tests), a proxy inside drover.
//!
//! The agent runs on the location's home engine (where a pool makes its
//! application networks) while that engine takes it; otherwise on the
//! pool's next running host, so a stopped home engine does not take the
//! load balancer down with it for longer than one replacement. A
//! restarted drover looks for a running agent on every candidate host.

use std::net::SocketAddr;
use std::time::Duration;

use actix::{Addr, Message, Recipient};

use super::agent::{self, AgentClient, AgentReady, AgentSettings};
use super::proxy::{Proxy, ProxyConfig};
use crate::host::agent::{AgentContainer, AgentSpec, InspectAgent, RunAgent, ROLE_LB_AGENT};
use crate::host::DockerHost;
use crate::protocol::EntityRef;

/// How long a new agent has to print its ready line once its container
/// started (the image import, the slow part, comes before).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A host an agent container may run on.
#[derive(Clone, Debug)]
pub struct AgentHost {
    pub host: Addr<DockerHost>,
    pub name: String,
    /// The address at which drover reaches the host's ports (its control
    /// API; clients too, when the load balancer binds every address).
    pub address: String,
}

/// Where a load balancer's agent may run: the home engine first, then the
/// hosts its pool lists.
#[derive(Clone)]
pub struct AgentHosts {
    pub home: AgentHost,
    pub others: Option<Recipient<ListAgentHosts>>,
}

/// Asks a host pool for its running hosts (the agent's fallbacks).
#[derive(Message)]
#[rtype(result = "Vec<AgentHost>")]
pub struct ListAgentHosts;

impl AgentHosts {
    /// Home first, then the pool's running hosts (each once).
    async fn candidates(&self) -> Vec<AgentHost> {
        let mut all = vec![self.home.clone()];
        if let Some(others) = &self.others {
            for h in others.send(ListAgentHosts).await.unwrap_or_default() {
                if !all.iter().any(|a| a.name == h.name) {
                    all.push(h);
                }
            }
        }
        all
    }
}

/// The running data plane.
pub enum Plane {
    /// A proxy in drover's process (no host: unit tests).
    Local(Proxy),
    Agent(Box<RunningAgent>),
}

/// An agent container drover talks to.
#[derive(Debug, Clone)]
pub struct RunningAgent {
    pub client: AgentClient,
    pub container: String,
    /// The container's `State.StartedAt` (unchanged by an adoption).
    pub started_at: String,
    /// The host it runs on.
    pub at: AgentHost,
    /// Found running and adopted, rather than made.
    pub adopted: bool,
    /// Its settings differed from the blueprint's and were changed in place.
    pub reconfigured: bool,
}

/// What to do with the agent container found on the engine (pure).
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// It serves `listen` and drover can talk to it: adopt it.
    Adopt {
        ready: AgentReady,
        secret: String,
        container: String,
        started_at: String,
    },
    /// Make a new one (the reason, for the log).
    Replace(String),
}

/// Whether a found agent container can be adopted for `listen` (pure).
pub fn judge(c: Option<&AgentContainer>, listen: SocketAddr) -> Found {
    let Some(c) = c else {
        return Found::Replace("no agent container".into());
    };
    if !c.running {
        return Found::Replace("its container is not running".into());
    }
    let Some(ready) = c.ready.as_deref().and_then(AgentReady::parse) else {
        return Found::Replace("it never said it was ready".into());
    };
    let Some(secret) = agent::secret_in(&c.env) else {
        return Found::Replace("its container has no control secret".into());
    };
    let same = ready.listen.ip() == listen.ip()
        && (listen.port() == 0 || ready.listen.port() == listen.port());
    if !same {
        return Found::Replace(format!(
            "it listens on {}, the blueprint says {listen}",
            ready.listen
        ));
    }
    Found::Adopt {
        ready,
        secret,
        container: c.id.clone(),
        started_at: c.started_at.clone(),
    }
}

/// Where drover reaches a control API bound to `bound` on `host_address`.
async fn control_addr(host_address: &str, bound: SocketAddr) -> Result<SocketAddr, String> {
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    tokio::net::lookup_host((host_address, bound.port()))
        .await
        .map_err(|e| format!("resolving the host address {host_address}: {e}"))?
        .next()
        .ok_or_else(|| format!("the host address {host_address} resolves to nothing"))
}

async fn inspect(at: &AgentHost, me: &EntityRef) -> Result<Option<AgentContainer>, String> {
    at.host
        .send(InspectAgent {
            app: me.app.clone(),
            entity: me.entity.clone(),
            ready_prefix: agent::READY_PREFIX.to_string(),
        })
        .await
        .map_err(|e| format!("the host actor is gone: {e}"))?
        .map_err(|e| e.to_string())
}

/// Opens the data plane: adopts the running agent (changing its settings
/// in place when they differ), else makes one; without a host, a proxy here.
pub async fn open(
    me: EntityRef,
    hosts: Option<AgentHosts>,
    listen: SocketAddr,
    settings: AgentSettings,
) -> Result<Plane, String> {
    let Some(hosts) = hosts else {
        let cfg = ProxyConfig::from_blueprint(settings.mode, &settings.limits);
        return Proxy::start(listen, cfg)
            .await
            .map(Plane::Local)
            .map_err(|e| {
                format!(
                    "cannot listen on {listen}: {e}; choose another `port` (0 picks a free one)"
                )
            });
    };
    let candidates = hosts.candidates().await;
    for at in &candidates {
        match adopt(&me, at, listen, &settings).await {
            Ok(Some(a)) => return Ok(Plane::Agent(Box::new(a))),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(lb = %me, host = %at.name, error = %e, "no agent to adopt there")
            }
        }
    }
    let mut errors = Vec::new();
    for at in candidates {
        let name = at.name.clone();
        match make(me.clone(), at, listen, settings.clone()).await {
            Ok(p) => return Ok(p),
            Err(e) => {
                tracing::warn!(lb = %me, host = %name, error = %e, "could not make the load balancer's agent there");
                errors.push(format!("on {name}: {e}"));
            }
        }
    }
    Err(errors.join("; "))
}

/// The running agent on `at`, if it serves `listen` and answers.
async fn adopt(
    me: &EntityRef,
    at: &AgentHost,
    listen: SocketAddr,
    settings: &AgentSettings,
) -> Result<Option<RunningAgent>, String> {
    let found = inspect(at, me).await?;
    let Found::Adopt {
        ready,
        secret,
        container,
        started_at,
    } = judge(found.as_ref(), listen)
    else {
        return Ok(None);
    };
    let control = control_addr(&at.address, ready.control).await?;
    let client = AgentClient::new(control, ready.listen, secret, &ready.cert_sha256);
    let now = match client.settings().await {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(lb = %me, error = %e, "the running load balancer does not answer; making a new one");
            return Ok(None);
        }
    };
    let reconfigured = now != *settings;
    if reconfigured {
        client
            .set_settings(settings)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!(lb = %me, %container, host = %at.name, listen = %ready.listen, reconfigured, "adopted the running load balancer");
    Ok(Some(RunningAgent {
        client,
        container,
        started_at,
        at: at.clone(),
        adopted: true,
        reconfigured,
    }))
}

async fn make(
    me: EntityRef,
    at: AgentHost,
    listen: SocketAddr,
    settings: AgentSettings,
) -> Result<Plane, String> {
    let secret = agent::new_secret().map_err(|e| e.to_string())?;
    let spec = AgentSpec {
        app: me.app.clone(),
        entity: me.entity.clone(),
        role: ROLE_LB_AGENT,
        args: agent::agent_args(listen, &settings),
        env: vec![format!("{}={secret}", agent::SECRET_ENV)],
    };
    let id = at
        .host
        .send(RunAgent(spec))
        .await
        .map_err(|e| format!("the host actor is gone: {e}"))?
        .map_err(|e| e.to_string())?;
    let name = crate::host::container_name(&me.app, &me.entity);
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let c = inspect(&at, &me).await?;
        if let Some(c) = c.filter(|c| c.id == id) {
            if let Some(ready) = c.ready.as_deref().and_then(AgentReady::parse) {
                let control = control_addr(&at.address, ready.control).await?;
                let client = AgentClient::new(control, ready.listen, secret, &ready.cert_sha256);
                return Ok(Plane::Agent(Box::new(RunningAgent {
                    client,
                    container: c.id,
                    started_at: c.started_at,
                    at,
                    adopted: false,
                    reconfigured: false,
                })));
            }
            if !c.running {
                return Err(format!(
                    "its container {name} exited before it listened (is port {} free on the host?); see `docker logs {name}`",
                    listen.port()
                ));
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "its container {name} did not say it listens within {READY_TIMEOUT:?}; see `docker logs {name}`"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(running: bool, ready: Option<&str>, secret: bool) -> AgentContainer {
        AgentContainer {
            id: "c1".into(),
            running,
            started_at: "t".into(),
            env: if secret {
                vec![format!("{}=s3", agent::SECRET_ENV)]
            } else {
                vec![]
            },
            ready: ready.map(|r| format!("{}{r}", agent::READY_PREFIX)),
        }
    }

    const READY: &str = r#"{"listen":"0.0.0.0:8000","control":"0.0.0.0:9000","cert_sha256":"00"}"#;

    #[test]
    fn a_running_ready_agent_on_the_same_port_is_adopted() {
        let c = container(true, Some(READY), true);
        let any = "0.0.0.0:0".parse().unwrap();
        let same = "0.0.0.0:8000".parse().unwrap();
        for listen in [any, same] {
            match judge(Some(&c), listen) {
                Found::Adopt {
                    ready,
                    secret,
                    container,
                    started_at,
                } => {
                    assert_eq!(ready.listen.port(), 8000);
                    assert_eq!(secret, "s3");
                    assert_eq!((container.as_str(), started_at.as_str()), ("c1", "t"));
                }
                other => panic!("{listen}: {other:?}"),
            }
        }
    }

    #[test]
    fn anything_else_is_made_again_with_its_reason() {
        let listen: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let why = |c: Option<&AgentContainer>, l: SocketAddr| match judge(c, l) {
            Found::Replace(w) => w,
            other => panic!("{other:?}"),
        };
        assert!(why(None, listen).contains("no agent"));
        assert!(why(Some(&container(false, Some(READY), true)), listen).contains("not running"));
        assert!(why(Some(&container(true, None, true)), listen).contains("ready"));
        assert!(why(Some(&container(true, Some(READY), false)), listen).contains("secret"));
        let other_port = "0.0.0.0:8001".parse().unwrap();
        assert!(why(Some(&container(true, Some(READY), true)), other_port).contains("8001"));
    }
}
