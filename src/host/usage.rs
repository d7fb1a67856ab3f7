//! The engine's capacity and usage sensors, for whoever places containers
//! on it: the host pool of its location and the CPU placement policy.
//!
//! Sampling costs a few stats calls (at most [`engines::MAX_SAMPLED`]), so
//! it only runs while somebody has subscribed (engines of a pool), every
//! [`SAMPLE_EVERY`], one sample in flight at a time. Which containers run
//! is listed again every [`RELIST_EVERY`] only: a list is a full summary of
//! every container, and at 100 containers an engine listing it every 2 s
//! cost more than the samples themselves (issue 18: 1,000 engines made
//! 500 lists of 100 summaries a second, to sample 16 containers each).

use std::time::Duration;

use actix::prelude::*;

use super::{engines, DockerHost};

/// How often a subscribed engine is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How long the engine's CPUs and memory (`docker info`) are reused: they
/// rarely change, and the pool already asks `docker info` every second to
/// judge the engine alive.
const CAPACITY_EVERY: Duration = Duration::from_secs(60);
/// How long the list of running containers (which to sample, and how many
/// drover does not manage) is reused. A container started since is
/// counted from the next list on; drover's own are counted by the pool
/// from its placements anyway.
pub const RELIST_EVERY: Duration = Duration::from_secs(10);

/// One sample of an engine: the sensors `host.cpus`, `host.memory_bytes`,
/// `host.cpu.usage` (0 to 1 of its CPUs) and the containers drover does not
/// manage (they count against max-containers too).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct HostSensors {
    pub host: String,
    pub cpus: f64,
    pub memory_bytes: u64,
    pub cpu_usage: f64,
    pub unmanaged_containers: u32,
}

/// Sends this engine's [`HostSensors`] to `0` from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeHostSensors(pub Recipient<HostSensors>);

/// Subscribers and the sampler's state, kept in the [`DockerHost`].
#[derive(Default)]
pub struct Subscribers {
    to: Vec<Recipient<HostSensors>>,
    ticking: bool,
    sampling: bool,
    /// (cpus, memory bytes, when read).
    capacity: Option<(f64, u64, std::time::Instant)>,
    /// The running containers, and when they were listed.
    running: Option<(std::sync::Arc<engines::Running>, std::time::Instant)>,
}

impl Handler<SubscribeHostSensors> for DockerHost {
    type Result = ();
    fn handle(&mut self, msg: SubscribeHostSensors, ctx: &mut Context<Self>) {
        self.usage.to.push(msg.0);
        if !self.usage.ticking {
            self.usage.ticking = true;
            sample(self, ctx);
            ctx.run_interval(SAMPLE_EVERY, sample);
        }
    }
}

fn sample(act: &mut DockerHost, ctx: &mut Context<DockerHost>) {
    act.usage.to.retain(|r| r.connected());
    if act.usage.sampling || act.usage.to.is_empty() {
        return;
    }
    act.usage.sampling = true;
    let docker = act.docker.clone();
    let known = act
        .usage
        .capacity
        .filter(|(_, _, at)| at.elapsed() < CAPACITY_EVERY);
    let listed = act
        .usage
        .running
        .clone()
        .filter(|(_, at)| at.elapsed() < RELIST_EVERY);
    // Each step's answer is kept even when a later one fails: on an
    // engine slow enough for the CPU sample to time out (a rebind at
    // 100,000 containers), dropping them all made every later sample ask
    // `docker info` and list the containers again (issue 18: 7,500 info
    // calls, as many as the engines' containers lists, during a rebind).
    let fut = async move {
        let capacity = match known {
            Some(c) => Some(c),
            None => tokio::time::timeout(Duration::from_secs(5), docker.info())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|info| {
                    (
                        info.ncpu.unwrap_or(0).max(0) as f64,
                        info.mem_total.unwrap_or(0).max(0) as u64,
                        std::time::Instant::now(),
                    )
                }),
        };
        let running = match listed {
            Some(r) => Some(r),
            None => {
                tokio::time::timeout(Duration::from_secs(5), engines::running_containers(&docker))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|r| (std::sync::Arc::new(r), std::time::Instant::now()))
            }
        };
        let rotation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as usize)
            .unwrap_or(0);
        let cores = match (&capacity, &running) {
            (Some(_), Some(running)) => tokio::time::timeout(
                Duration::from_secs(5),
                engines::cpu_cores_of(&docker, &running.0.ids, rotation),
            )
            .await
            .ok(),
            _ => None,
        };
        (capacity, running, cores)
    };
    ctx.spawn(
        fut.into_actor(act)
            .map(|(capacity, running, cores), act, _| {
                act.usage.sampling = false;
                if capacity.is_some() {
                    act.usage.capacity = capacity;
                }
                if running.is_some() {
                    act.usage.running = running.clone();
                }
                let (Some(capacity), Some(running), Some(cores)) = (capacity, running, cores)
                else {
                    // A silent engine publishes nothing: the pool's own pings
                    // judge whether it is on fire.
                    return;
                };
                let unmanaged = running.0.unmanaged;
                let (cpus, memory_bytes, _) = capacity;
                let s = HostSensors {
                    host: act.name.clone(),
                    cpus,
                    memory_bytes,
                    cpu_usage: if cpus > 0.0 {
                        (cores / cpus).clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                    unmanaged_containers: unmanaged,
                };
                for to in &act.usage.to {
                    to.do_send(s.clone());
                }
            }),
    );
}
