//! Placing a container: the queue to the placement policy, one decision
//! at a time, and the answer once the chosen host has the application's
//! network and image.

use actix::prelude::*;

use super::{Answer, Contact, HostPool, Place, PlaceError, PlacedOn};
use crate::host::engines::{self, GetClient, HasImage};
use crate::host::network::EnsureNetwork;
use crate::host::{DockerHost, HostError};
use crate::policy::placement::{Ask, Decide, Decided};

/// Why the pool could not place a container.
#[derive(Debug, thiserror::Error)]
pub enum PlaceFailure {
    #[error("insufficient capacity in location {location}: {entity} fits on no host, and provisioning a host failed: {cause}")]
    ProvisionFailed {
        location: String,
        entity: String,
        cause: String,
    },
    #[error("insufficient capacity in location {location} ({hosts} of at most {max_hosts} hosts): {summary}")]
    NoFit {
        location: String,
        hosts: u32,
        max_hosts: u32,
        summary: String,
    },
    #[error("network on {host}: {source}")]
    Network { host: String, source: HostError },
    #[error("host {host} unreachable: {source}")]
    Unreachable { host: String, source: MailboxError },
    #[error("copying image `{image}` to host {host} failed: {source}")]
    ImageCopy {
        host: String,
        image: String,
        source: HostError,
    },
    #[error("the host pool stopped; drover is shutting down, try again after it restarts")]
    Stopped,
}

/// What the container hears: capacity failures stay recognisable (the
/// cluster's autoscaler holds its size below them), the rest say which host
/// could not be readied.
impl From<PlaceFailure> for PlaceError {
    fn from(f: PlaceFailure) -> PlaceError {
        match f {
            PlaceFailure::ProvisionFailed {
                location,
                entity,
                cause,
            } => PlaceError::InsufficientCapacity {
                location,
                detail: format!(
                    "{entity} fits on no host, and provisioning a host failed: {cause}"
                ),
            },
            PlaceFailure::NoFit {
                location,
                hosts,
                max_hosts,
                summary,
            } => PlaceError::InsufficientCapacity {
                location,
                detail: format!("{hosts} of at most {max_hosts} hosts: {summary}"),
            },
            PlaceFailure::Stopped => PlaceError::PoolStopped,
            other => PlaceError::HostNotReady(other.to_string()),
        }
    }
}

/// The most placements one message to the placement policy decides.
const DECIDE_AT_ONCE: usize = 128;

impl HostPool {
    /// Takes the waiting placements (up to [`DECIDE_AT_ONCE`]) to the
    /// placement policy, if none are out and nothing holds the queue.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        // A loop, not a recursion, over adoptions: a rebind adopts every
        // container at once, and recursing once per adoption overflowed
        // the main thread's stack at 5,000 containers.
        let mut batch: Vec<(Place, Answer)> = Vec::new();
        while batch.len() < DECIDE_AT_ONCE {
            let Some((msg, tx)) = self.queue.next(self.model.ready()) else {
                break;
            };
            if let Some(w) = self.adopt_found(msg, tx, ctx) {
                batch.push(w);
            }
        }
        if batch.is_empty() {
            return;
        }
        let Some(policy) = self.policy.clone() else {
            self.queue.put_back_all(batch);
            return;
        };
        let states = self.model.states();
        let names: Vec<String> = states.iter().map(|s| s.name.clone()).collect();
        let asks = batch
            .iter()
            .map(|(msg, _)| Ask {
                request: msg.request.clone(),
                layers: msg.rules.clone(),
                avoid: msg.avoid.clone(),
                cpu_move: msg
                    .avoid
                    .as_ref()
                    .is_some_and(|h| !self.model.is_cordoned(h)),
                mover: msg.mover.clone(),
            })
            .collect();
        self.queue.deciding();
        ctx.spawn(
            async move { policy.send(Decide { states, asks }).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.queue.decided();
                    let mut answers = match res {
                        Ok(d) => d.into_iter(),
                        Err(e) => {
                            let summary = format!("the placement policy did not answer: {e}");
                            vec![
                                Decided {
                                    chosen: None,
                                    summary
                                };
                                batch.len()
                            ]
                            .into_iter()
                        }
                    };
                    let mut batch = batch.into_iter();
                    for (msg, tx) in batch.by_ref() {
                        let d = answers.next().unwrap_or_else(|| Decided {
                            chosen: None,
                            summary: "the placement policy gave no answer for it".into(),
                        });
                        act.record_decision(d.summary.clone());
                        // Hosts may have come or gone while it decided.
                        let at = d
                            .chosen
                            .and_then(|i| names.get(i))
                            .and_then(|n| act.model.position(n))
                            .filter(|i| act.model.host(*i).state.available);
                        match at {
                            Some(i) => act.place_on(i, msg, tx, d.summary, ctx),
                            None => act.no_fit(msg, tx, d.summary, ctx),
                        }
                        if act.queue.is_held() {
                            // It waits for a new host, first in line; the
                            // rest wait behind it, in order, to be decided
                            // again with that host there.
                            break;
                        }
                    }
                    act.queue.put_back_behind_head(batch.collect());
                    act.pump(ctx);
                }),
        );
    }

    /// A placement whose container a start list found on a host that
    /// takes containers goes there: adopted as listed if it runs, else
    /// placed there (its network and image are checked). Any other is
    /// given back, to be decided.
    ///
    /// This needs no decision and no other host's list, so the pool's
    /// `Place` handler calls it before queueing: a rebind adopts each
    /// container as soon as its host's list is in, rather than once every
    /// host's is (issue 18: at 100,000 containers on 1,000 engines nothing
    /// was adopted for the first 4 to 11 s, the slowest list's time).
    pub(super) fn adopt_found(
        &mut self,
        msg: Place,
        tx: Answer,
        ctx: &mut Context<Self>,
    ) -> Option<(Place, Answer)> {
        let key = (msg.request.app.clone(), msg.request.entity.clone());
        // Forgotten with the model's finding, whether adopted or not.
        let listed = self.listed.remove(&key);
        let Some(i) = self.model.adopt(&key, msg.avoid.is_some()) else {
            return Some((msg, tx));
        };
        let host = self.model.host(i).name();
        let summary = format!(
            "{}/{}: adopted on {host}, where its container already runs",
            key.0, key.1,
        );
        let running = listed
            .filter(|(on, c)| on == host && adopt_as_listed(c))
            .map(|(_, c)| c);
        self.record_decision(summary.clone());
        match running {
            Some(c) => self.adopt_on(i, msg, tx, summary, c),
            None => self.place_on(i, msg, tx, summary, ctx),
        }
        None
    }

    /// Reserves the container's slot on host `i` and answers once the
    /// host has the application's network and the image.
    pub(super) fn place_on(
        &mut self,
        i: usize,
        msg: Place,
        tx: Answer,
        explanation: String,
        ctx: &mut Context<Self>,
    ) {
        let contact = Contact {
            relocate: msg.relocate.clone(),
            mover: msg.mover.clone(),
        };
        self.model.reserve(i, &msg.request, contact);
        let h = self.model.host(i);
        let placed = PlacedOn {
            host: h.handle.clone(),
            host_name: h.name().to_string(),
            host_address: h.address.clone(),
            explanation,
            adopted: None,
        };
        // The other hosts are asked for only if this one lacks the image:
        // a list of every host's address made for every placement was a
        // thousand allocations each, 480 MB at the peak of a 5,000-container
        // deploy on 1,000 hosts.
        let pool = ctx.address();
        let app = msg.request.app;
        let image = msg.image;
        let fut = async move {
            let target = placed.host.clone();
            let host = placed.host_name.clone();
            match target.send(EnsureNetwork { app, network: None }).await {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => return Err(PlaceFailure::Network { host, source }),
                Err(source) => return Err(PlaceFailure::Unreachable { host, source }),
            }
            if let Some(image) = image.filter(|i| !crate::host::workload::is_workload_image(i)) {
                ensure_image(&target, &host, &pool, &image).await?;
            }
            Ok(placed)
        };
        // A task of its own, not one of the pool's: actix polls every
        // future spawned on an actor's context whenever the actor wakes, so
        // thousands of placements waiting for their network made every
        // message to the pool cost thousands of polls (quadratic; at 5,000
        // containers the pool's pings timed out and healthy hosts were
        // declared on fire). The answer needs nothing of the pool.
        actix::spawn(async move {
            let _ = tx.send(fut.await.map_err(PlaceError::from));
        });
    }

    /// Reserves the slot of a container found running on host `i` at
    /// start and answers at once: it runs, so the host has its network
    /// (an engine refuses to remove a network a container is on) and its
    /// image, and the entity adopts it as the list showed it. A rebind
    /// of 10,000 containers made seven engine calls for each (network,
    /// image twice, a create refused by name, inspect, start, inspect)
    /// to learn what the list had said.
    fn adopt_on(
        &mut self,
        i: usize,
        msg: Place,
        tx: Answer,
        explanation: String,
        container: crate::host::ContainerInfo,
    ) {
        let contact = Contact {
            relocate: msg.relocate.clone(),
            mover: msg.mover.clone(),
        };
        self.model.reserve(i, &msg.request, contact);
        let h = self.model.host(i);
        let _ = tx.send(Ok(PlacedOn {
            host: h.handle.clone(),
            host_name: h.name().to_string(),
            host_address: h.address.clone(),
            explanation,
            adopted: Some(container),
        }));
    }

    pub(super) fn no_fit(
        &mut self,
        msg: Place,
        tx: Answer,
        summary: String,
        ctx: &mut Context<Self>,
    ) {
        if self.model.may_grow_for(msg.avoid.as_deref()) {
            // First in line again once the new host is up.
            self.queue.hold((msg, tx));
            self.provision("a container fits on no host", ctx);
        } else {
            let e = PlaceFailure::NoFit {
                location: self.name().to_string(),
                hosts: self.model.live_hosts(),
                max_hosts: self.model.limits().max_hosts,
                summary,
            };
            let _ = tx.send(Err(e.into()));
        }
    }
}

/// Whether a container the start's list showed is adopted as it was
/// listed: only a running one. Any other is left to the entity's create,
/// which starts it (and connects the networks an interrupted create had
/// not connected yet).
pub(super) fn adopt_as_listed(c: &crate::host::ContainerInfo) -> bool {
    c.state == "running"
}

/// The pool's other answering hosts, from which an image may be copied to
/// the host named `.0`.
#[derive(Message)]
#[rtype(result = "Vec<Addr<DockerHost>>")]
pub(super) struct ImageSources(String);

impl Handler<ImageSources> for HostPool {
    type Result = MessageResult<ImageSources>;
    fn handle(&mut self, ImageSources(host): ImageSources, _: &mut Context<Self>) -> Self::Result {
        let sources = match self.model.position(&host) {
            Some(i) => self.model.image_sources(i).into_iter().cloned().collect(),
            None => Vec::new(),
        };
        MessageResult(sources)
    }
}

/// Copies `image` to `target` from the first other host that has it.
async fn ensure_image(
    target: &Addr<DockerHost>,
    host: &str,
    pool: &Addr<HostPool>,
    image: &str,
) -> Result<(), PlaceFailure> {
    let known = target
        .send(HasImage(image.to_string()))
        .await
        .map_err(|source| PlaceFailure::Unreachable {
            host: host.to_string(),
            source,
        })?;
    // Has it, or cannot be asked: the host's own create reports a missing
    // image or an engine that does not answer.
    if known != Some(false) {
        return Ok(());
    }
    let to = target
        .send(GetClient)
        .await
        .map_err(|source| PlaceFailure::Unreachable {
            host: host.to_string(),
            source,
        })?;
    let sources = pool
        .send(ImageSources(host.to_string()))
        .await
        .map_err(|_| PlaceFailure::Stopped)?;
    for s in &sources {
        let Ok(from) = s.send(GetClient).await else {
            continue;
        };
        if engines::image_known(&from, image).await == Some(true) {
            return engines::copy_image(&from, &to, image)
                .await
                .map_err(|source| PlaceFailure::ImageCopy {
                    host: host.to_string(),
                    image: image.to_string(),
                    source,
                });
        }
    }
    // Nothing to copy from: the host's own create reports the missing image.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(state: &str) -> crate::host::ContainerInfo {
        crate::host::ContainerInfo {
            id: "c1".into(),
            name: "drover-app-web-1".into(),
            state: state.into(),
            ports: Default::default(),
        }
    }

    #[test]
    fn only_a_running_container_is_adopted_as_it_was_listed() {
        assert!(adopt_as_listed(&listed("running")));
        // These need a start: the entity's create makes it (and finishes
        // what an interrupted create left undone).
        for state in ["created", "exited", "paused", "dead", "restarting"] {
            assert!(!adopt_as_listed(&listed(state)), "{state}");
        }
    }
}
