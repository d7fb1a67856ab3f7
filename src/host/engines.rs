//! What a host pool needs of its engines: connections with TLS, image
//! copies between engines (no registry here), and the engine's CPU usage.
//!
//! These stay in the host module (the only code that talks to Docker);
//! the pool calls them with clients it gets from [`GetClient`].

use std::path::Path;

use actix::prelude::*;
use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListContainersOptionsBuilder, StatsOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::{docker_message, DockerHost, HostError};

/// Connects to an engine (`local`, `unix://`, `tcp://`, or `tcp://` with
/// TLS client certificates) and negotiates the API version.
pub async fn connect_endpoint(
    endpoint: &str,
    tls: Option<(&Path, &Path, &Path)>,
) -> Result<Docker, HostError> {
    let docker = endpoint_client(endpoint, tls)?;
    answer_endpoint(endpoint, tls.is_some(), docker).await
}

/// A client for an engine, made without asking it anything: an error
/// here is the configuration's (an endpoint or TLS file drover cannot
/// use), not the engine's.
pub fn endpoint_client(
    endpoint: &str,
    tls: Option<(&Path, &Path, &Path)>,
) -> Result<Docker, HostError> {
    let Some((ca, cert, key)) = tls else {
        return super::client(endpoint);
    };
    Docker::connect_with_ssl(endpoint, key, cert, ca, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|e| tls_error(endpoint, &e))
}

/// Negotiates the API version with the engine behind `docker` and pings
/// it; `tls`: the client speaks TLS, so the error names its causes.
pub async fn answer_endpoint(
    endpoint: &str,
    tls: bool,
    docker: Docker,
) -> Result<Docker, HostError> {
    if !tls {
        return super::answer(endpoint, docker).await;
    }
    super::agree(docker, |e| tls_error(endpoint, e)).await
}

/// A TLS engine's error with the whole chain of causes: the TLS reason
/// (an unknown issuer, a certificate the engine refused) sits deep below
/// hyper's message.
fn tls_error(endpoint: &str, e: &bollard::errors::Error) -> HostError {
    let mut message = docker_message(e);
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    HostError::TlsConnect {
        endpoint: endpoint.to_string(),
        message,
    }
}

/// The host's client, for the functions of this file.
#[derive(Message)]
#[rtype(result = "Docker")]
pub struct GetClient;

impl Handler<GetClient> for DockerHost {
    type Result = MessageResult<GetClient>;
    fn handle(&mut self, _: GetClient, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.docker.clone())
    }
}

/// Whether the host's engine has an image: [`image_known`], believing an
/// image seen there lately (see `recent`).
#[derive(Message)]
#[rtype(result = "Option<bool>")]
pub struct HasImage(pub String);

impl Handler<HasImage> for DockerHost {
    type Result = ResponseFuture<Option<bool>>;
    fn handle(&mut self, HasImage(image): HasImage, _: &mut Context<Self>) -> Self::Result {
        let seen = super::Seen::Image(image.clone());
        if self.recent.believed(&seen, std::time::Instant::now()) {
            return Box::pin(async { Some(true) });
        }
        let (docker, recent) = (self.docker.clone(), self.recent.clone());
        Box::pin(async move {
            let known = image_known(&docker, &image).await;
            if known == Some(true) {
                recent.saw(seen, std::time::Instant::now());
            }
            known
        })
    }
}

/// Whether the engine has `image`: `Some(false)` only when it says it has
/// not (404); `None` when it could not be asked. A refused connection is
/// not a missing image: taking it for one started image copies that failed
/// the placement.
pub async fn image_known(docker: &Docker, image: &str) -> Option<bool> {
    match super::with_connect_retries(|| docker.inspect_image(image)).await {
        Ok(_) => Some(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Some(false),
        Err(_) => None,
    }
}

/// Streams `image` from one engine into another (`docker save | docker
/// load`, without a file in between).
pub async fn copy_image(from: &Docker, to: &Docker, image: &str) -> Result<(), HostError> {
    let export = from.export_image(image);
    let opts = ImportImageOptionsBuilder::default().quiet(true).build();
    let mut import = Box::pin(to.import_image_stream(opts, export, None));
    while let Some(r) = import.next().await {
        let info = r.map_err(|e| HostError::engine(format!("copy image {image}"), e))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(HostError::local(format!("copy image {image}"), e));
        }
    }
    if image_known(to, image).await != Some(true) {
        return Err(HostError::local(
            format!("copy image {image}"),
            "the image is not there after the copy",
        ));
    }
    Ok(())
}

/// The engine's running containers, and how many of them drover does not
/// manage.
pub async fn running_containers(docker: &Docker) -> Result<Running, HostError> {
    let opts = ListContainersOptionsBuilder::default().all(false).build();
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| HostError::engine("list containers", e))?;
    // Containers drover manages are counted by the pool from its own
    // placements (a sample is older than the last placement); only the
    // others are counted here.
    let unmanaged = list
        .iter()
        .filter(|c| {
            !c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key(super::labels::MANAGED))
        })
        .count() as u32;
    Ok(Running {
        ids: list.into_iter().filter_map(|c| c.id).collect(),
        unmanaged,
    })
}

/// An engine's running containers, as [`running_containers`] listed them.
#[derive(Debug, Clone, Default)]
pub struct Running {
    pub ids: Vec<String>,
    /// How many of them drover does not manage.
    pub unmanaged: u32,
}

/// The CPU cores the running containers `ids` use, estimated from the
/// stats of at most [`MAX_SAMPLED`] of them (rotating with `rotation`).
/// A container gone since the list is not sampled, and counts as the
/// average of the others.
pub async fn cpu_cores_of(docker: &Docker, ids: &[String], rotation: usize) -> f64 {
    let sampled = sample_of(ids, MAX_SAMPLED, rotation);
    // Two at a time, not all sixteen: each call is a connection the
    // client then keeps (see `transport::IDLE_PER_ENGINE`); with the stats
    // sampler's two, an engine keeps four at steady state.
    let samples: Vec<Option<f64>> =
        futures_util::stream::iter(sampled.into_iter().map(|id| async move {
            // stream=false: one frame whose `precpu_stats` is the engine's
            // previous sample, so one call gives a rate.
            let opts = StatsOptionsBuilder::default().stream(false).build();
            let frame = super::stats::one_frame(docker, id, opts).await?.ok()?;
            let cur = frame.cpu_stats.as_ref()?;
            let pre = frame.precpu_stats.as_ref()?;
            let c = (
                cur.cpu_usage.as_ref()?.total_usage?,
                cur.system_cpu_usage?,
                cur.online_cpus.unwrap_or(1),
            );
            let p = (
                pre.cpu_usage.as_ref()?.total_usage?,
                pre.system_cpu_usage?,
                pre.online_cpus.unwrap_or(1),
            );
            super::stats::cpu_fraction(p, c)
        }))
        .buffer_unordered(2)
        .collect()
        .await;
    let samples: Vec<f64> = samples.into_iter().flatten().collect();
    estimate_total(&samples, ids.len())
}

/// At most this many stats calls per engine sample. One call per running
/// container made a 100-container engine cost 100 calls every 2 s, and a
/// pool of 1,000 such engines 50,000 calls a second (the sampling ate the
/// control plane at 5,000 simulated containers); a sample of 16 estimates
/// the engine's CPU within a few percent for placement.
pub const MAX_SAMPLED: usize = 16;

/// Every `ids.len() / max`-th id from an offset that moves with
/// `rotation`, so successive samples see different containers; all of
/// them when there are at most `max`.
pub fn sample_of(ids: &[String], max: usize, rotation: usize) -> Vec<&String> {
    if ids.len() <= max || max == 0 {
        return ids.iter().collect();
    }
    let step = ids.len().div_ceil(max);
    ids.iter().skip(rotation % step).step_by(step).collect()
}

/// The total CPU of `running` containers from the samples of some of them.
pub fn estimate_total(samples: &[f64], running: usize) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().sum::<f64>() / samples.len() as f64 * running as f64
}

#[cfg(test)]
mod sampling_tests {
    use super::*;

    #[test]
    fn small_engines_are_sampled_whole_large_ones_in_part() {
        let ids: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(sample_of(&ids, 16, 3).len(), 10);
        let ids: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let a = sample_of(&ids, 16, 0);
        let b = sample_of(&ids, 16, 1);
        assert!(a.len() <= 16 && a.len() >= 14, "{}", a.len());
        assert_ne!(a, b, "the sample rotates");
        assert_eq!(estimate_total(&[0.5, 1.5], 10), 10.0);
        assert_eq!(estimate_total(&[], 10), 0.0);
        // All sampled: the estimate is the sum.
        assert_eq!(estimate_total(&[0.25, 0.5, 0.25], 3), 1.0);
    }
}

/// Stops the host actor (its event follower and resync with it): the
/// engine was decommissioned.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopHost;

impl Handler<StopHost> for DockerHost {
    type Result = ();
    fn handle(&mut self, _: StopHost, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
