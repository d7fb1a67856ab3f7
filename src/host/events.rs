//! Following an engine's event stream.
//!
//! The stream is the fast path: a killed container is seen within
//! milliseconds. It can drop (engine restart, socket hiccup), so on every
//! (re)connection we resume with `since` and send a full list: a lost event
//! never leaves drover wrong for longer than one resync.

use std::collections::HashMap;
use std::time::Duration;

use actix::Recipient;
use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

use super::{labels, list_managed, ContainerEvent, HostResync};

/// Backoff between reconnections: quick first, capped so a dead engine is
/// not hammered.
fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

pub async fn follow(
    host: String,
    docker: Docker,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
) {
    let mut since: Option<i64> = None;
    let mut attempt = 0u32;
    loop {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("label".into(), vec![format!("{}=true", labels::MANAGED)]);
        let mut builder = EventsOptionsBuilder::default().filters(&filters);
        let since_arg = since.map(|s| s.to_string());
        if let Some(s) = &since_arg {
            builder = builder.since(s);
        }
        let mut stream = Box::pin(docker.events(Some(builder.build())));
        // Reconcile after (re)subscribing, so nothing between the last event
        // seen and now is missed.
        let listed_at = std::time::Instant::now();
        if let Ok(containers) = list_managed(&docker, None).await {
            resync_to.do_send(HostResync {
                host: host.clone(),
                containers,
                listed_at,
            });
        }
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    attempt = 0;
                    if let Some(t) = ev.time {
                        since = Some(t);
                    }
                    let Some(actor) = ev.actor else { continue };
                    let attrs = actor.attributes.unwrap_or_default();
                    let (Some(app), Some(entity)) =
                        (attrs.get(labels::APP), attrs.get(labels::ENTITY))
                    else {
                        continue;
                    };
                    let action = ev.action.unwrap_or_default();
                    // `exec_*` carry a suffix (the command); `health_status: ...`
                    // keeps its own, the verdict.
                    let action = super::runtime::event_action(&action);
                    events_to.do_send(ContainerEvent {
                        host: host.clone(),
                        app: app.clone(),
                        entity: entity.clone(),
                        container_id: actor.id.unwrap_or_default(),
                        action,
                    });
                }
                Err(e) => {
                    tracing::warn!(host = %host, error = %e, "engine event stream failed; reconnecting");
                    break;
                }
            }
        }
        if !events_to.connected() {
            return;
        }
        tokio::time::sleep(reconnect_delay(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_grows_and_caps() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1), Duration::from_millis(200));
        assert!(reconnect_delay(5) > reconnect_delay(4));
        assert_eq!(reconnect_delay(30), Duration::from_millis(5_000));
    }
}
