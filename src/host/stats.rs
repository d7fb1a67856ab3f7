//! Container stats: CPU and memory, sampled per engine.
//!
//! One sampler per engine ([`Feeds`], owned by the host actor) walks the
//! containers whose entities asked for stats, in rounds: every
//! [`ROUND_EVERY`] it takes one one-shot `stats?stream=false&one-shot=true`
//! of each, at most [`IN_FLIGHT`] at a time, and a round that takes longer
//! than the period delays the next one instead of piling up. A streaming
//! connection per container (what this replaced) cost one open file per
//! container and ran drover out of descriptors at 10,000 simulated
//! containers; this costs `IN_FLIGHT` per engine.
//!
//! CPU usage is the difference of two samples' cumulative counters, as
//! `docker stats` computes it: the engine's `precpu_stats` when it fills
//! them, else the previous round's. A feed ends when its container goes
//! (404), the entity asks for another, or the entity stops.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

/// The one frame of a non-streamed stats call, with the answer read to its
/// end: a body dropped half read cannot go back to the client's pool, and
/// every sample made a new connection to the engine (274,000 in a minute
/// at 5,000 containers). A non-streamed answer ends right after its frame.
pub(crate) async fn one_frame(
    docker: &Docker,
    id: &str,
    opts: bollard::query_parameters::StatsOptions,
) -> Option<Result<ContainerStatsResponse, bollard::errors::Error>> {
    let mut answer = Box::pin(docker.stats(id, Some(opts)));
    let first = answer.next().await;
    if matches!(first, Some(Ok(_))) {
        while answer.next().await.is_some() {}
    }
    first
}

/// How often a round starts: Docker's streamed stats send a frame about
/// every second, so a sensor changes as often as it did with a stream
/// when the engine answers fast enough.
pub const ROUND_EVERY: Duration = Duration::from_secs(1);

/// Stats calls in flight per engine. Docker answers a one-shot from the
/// cgroup files in about a millisecond, so two sample a few hundred
/// containers well within the period. Each call in flight is a connection
/// the client then keeps (about 40 KiB of hyper's buffers and channels
/// each, heaptrack): with eight, 1,000 engines held 8,000 connections,
/// 320 MB of drover's heap whatever the number of containers.
pub const IN_FLIGHT: usize = 2;

/// A host whose set of containers is changing (new containers followed
/// within this long) holds its next round: during a deploy wave or a
/// rebind every engine gains containers for tens of seconds, and sampling
/// them as they arrive was the largest share of drover's CPU in a
/// 100,000-container deploy and most of the engine calls of a rebind
/// (issue 18), taken from the creates, starts and adoptions the wave is
/// waiting for.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The longest a changing host holds its rounds: its sensors are then at
/// most this old during a wave (kubelet's resource metrics are scraped
/// every 10 to 15 s; between waves, rounds are every [`ROUND_EVERY`]).
pub const HOLD_AT_MOST: Duration = Duration::from_secs(10);

/// A call that takes this long is abandoned for this round (a wedged
/// engine must not stop the others' rounds: each engine has its own).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One sample of a container's usage.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct StatsSample {
    pub container_id: String,
    /// Fraction of one core (1.0 = a whole core); `None` when it cannot be
    /// computed from this sample (the first one, or a counter reset).
    pub cpu: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// Cumulative CPU counters of one frame: (container total, system total, online cpus).
pub type CpuCounters = (u64, u64, u32);

/// CPU use in cores between two frames. Counters that went backwards (a
/// restarted container, a reset) give `None` rather than a huge number.
pub fn cpu_fraction(prev: CpuCounters, cur: CpuCounters) -> Option<f64> {
    let (p_total, p_sys, _) = prev;
    let (c_total, c_sys, cpus) = cur;
    if c_total < p_total || c_sys <= p_sys {
        return None;
    }
    let cpu_delta = (c_total - p_total) as f64;
    let sys_delta = (c_sys - p_sys) as f64;
    Some(cpu_delta / sys_delta * cpus.max(1) as f64)
}

fn counters(s: &bollard::models::ContainerCpuStats) -> Option<CpuCounters> {
    Some((
        s.cpu_usage.as_ref()?.total_usage?,
        s.system_cpu_usage?,
        s.online_cpus.unwrap_or(1),
    ))
}

/// The sample a frame gives, and the counters to keep for the next one.
/// `prev` is this container's previous sample; the engine's own
/// `precpu_stats` wins when it has them (a one-shot leaves them empty).
pub fn sample_of_frame(
    container_id: &str,
    frame: &ContainerStatsResponse,
    prev: Option<CpuCounters>,
) -> (StatsSample, Option<CpuCounters>) {
    let cur = frame.cpu_stats.as_ref().and_then(counters);
    let before = frame
        .precpu_stats
        .as_ref()
        .and_then(counters)
        .filter(|c| c.1 > 0)
        .or(prev);
    let cpu = match (before, cur) {
        (Some(p), Some(c)) => cpu_fraction(p, c),
        _ => None,
    };
    let mem = frame.memory_stats.as_ref();
    // Page cache is reclaimable; `docker stats` subtracts it too.
    let cache = mem
        .and_then(|m| m.stats.as_ref())
        .and_then(|s| s.get("inactive_file").or(s.get("cache")).copied())
        .unwrap_or(0);
    let sample = StatsSample {
        container_id: container_id.to_string(),
        cpu,
        memory_bytes: mem.and_then(|m| m.usage).map(|u| u.saturating_sub(cache)),
        memory_limit_bytes: mem.and_then(|m| m.limit),
    };
    (sample, cur.or(prev))
}

/// What became of one container in a round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Sampled; the counters to keep.
    Sampled(Option<CpuCounters>),
    /// The container is gone or its entity stopped: the feed ends.
    Ended,
    /// The call failed or timed out; tried again next round.
    Missed,
}

struct Feed {
    to: Recipient<StatsSample>,
    prev: Option<CpuCounters>,
}

/// The containers an engine samples, with each one's last counters.
#[derive(Default)]
pub struct Feeds {
    feeds: HashMap<String, Feed>,
    round_running: bool,
    /// When the running round started.
    started: Option<Instant>,
    /// No round starts before this: after a round, the sampler rests as
    /// long as the round took. An engine that answers quickly is not
    /// affected (its round ends long before the next tick); one slow to
    /// answer (loaded, or many containers) spends at most half its time
    /// answering samples, and the calls that change things (creates,
    /// starts, lists) are not queued behind them. Issue 18: at 100,000
    /// containers the rounds ran back to back on every engine and were
    /// 93% of the engine calls made during a rebind.
    rest_until: Option<Instant>,
    /// When a container was last followed anew, and when the first one
    /// since the last round was: see [`SETTLE`].
    last_follow: Option<Instant>,
    held_since: Option<Instant>,
}

/// One container to sample in a round.
pub type Due = (String, Recipient<StatsSample>, Option<CpuCounters>);

impl Feeds {
    /// Samples of `container` go to `to` from the next round on; the feed
    /// of `replaces` (the entity's previous container) ends.
    pub fn follow(
        &mut self,
        container: String,
        to: Recipient<StatsSample>,
        replaces: Option<&str>,
    ) {
        self.follow_at(container, to, replaces, Instant::now())
    }

    fn follow_at(
        &mut self,
        container: String,
        to: Recipient<StatsSample>,
        replaces: Option<&str>,
        now: Instant,
    ) {
        self.last_follow = Some(now);
        self.held_since.get_or_insert(now);
        if let Some(old) = replaces.filter(|old| *old != container) {
            self.feeds.remove(old);
        }
        self.feeds.insert(container, Feed { to, prev: None });
    }

    /// The next round's containers, or `None` while a round runs (a slow
    /// engine gets fewer rounds, never overlapping ones), while it rests
    /// or settles, or when none is followed.
    pub fn start_round(&mut self) -> Option<Vec<Due>> {
        self.start_round_at(Instant::now())
    }

    fn start_round_at(&mut self, now: Instant) -> Option<Vec<Due>> {
        self.feeds.retain(|_, f| f.to.connected());
        let resting = self.rest_until.is_some_and(|t| now < t);
        let settling = self.last_follow.is_some_and(|t| now < t + SETTLE)
            && self.held_since.is_some_and(|t| now < t + HOLD_AT_MOST);
        if self.round_running || resting || settling || self.feeds.is_empty() {
            return None;
        }
        self.round_running = true;
        self.started = Some(now);
        self.held_since = None;
        Some(
            self.feeds
                .iter()
                .map(|(id, f)| (id.clone(), f.to.clone(), f.prev))
                .collect(),
        )
    }

    /// Takes a round's outcomes. A container followed anew during the
    /// round keeps its fresh state.
    pub fn end_round(&mut self, outcomes: Vec<(String, Outcome)>) {
        self.end_round_at(outcomes, Instant::now())
    }

    fn end_round_at(&mut self, outcomes: Vec<(String, Outcome)>, now: Instant) {
        self.round_running = false;
        if let Some(started) = self.started.take() {
            self.rest_until = Some(now + now.saturating_duration_since(started));
        }
        for (id, outcome) in outcomes {
            match outcome {
                Outcome::Sampled(c) => {
                    if let Some(f) = self.feeds.get_mut(&id) {
                        f.prev = c;
                    }
                }
                Outcome::Ended => {
                    self.feeds.remove(&id);
                }
                Outcome::Missed => {}
            }
        }
    }

    pub fn len(&self) -> usize {
        self.feeds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }
}

/// Samples `due` once each, at most [`IN_FLIGHT`] calls at a time; every
/// sample goes to its entity as soon as it arrives.
pub async fn round(docker: Docker, due: Vec<Due>) -> Vec<(String, Outcome)> {
    futures_util::stream::iter(due)
        .map(|(id, to, prev)| {
            let docker = docker.clone();
            async move {
                let outcome = sample_one(&docker, &id, &to, prev).await;
                (id, outcome)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

async fn sample_one(
    docker: &Docker,
    id: &str,
    to: &Recipient<StatsSample>,
    prev: Option<CpuCounters>,
) -> Outcome {
    if !to.connected() {
        return Outcome::Ended;
    }
    // one-shot: the engine answers from its cgroup files at once instead
    // of waiting a second to fill `precpu_stats`; the rate comes from our
    // previous sample.
    let opts = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let call = one_frame(docker, id, opts);
    let frame = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Some(Ok(frame))) => frame,
        Ok(Some(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }))) => return Outcome::Ended,
        _ => return Outcome::Missed,
    };
    let (sample, keep) = sample_of_frame(id, &frame, prev);
    if to.try_send(sample).is_err() && !to.connected() {
        return Outcome::Ended;
    }
    Outcome::Sampled(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_share_of_system_time_times_cpus() {
        // Used 0.5 s of CPU while the system (2 cpus) advanced 2 s: a quarter
        // of the machine, half a core.
        assert_eq!(
            cpu_fraction((0, 0, 2), (500_000_000, 2_000_000_000, 2)),
            Some(0.5)
        );
    }

    #[test]
    fn resets_and_idle_frames_give_nothing() {
        assert_eq!(
            cpu_fraction((900, 100, 2), (100, 200, 2)),
            None,
            "counter went back"
        );
        assert_eq!(
            cpu_fraction((100, 200, 2), (100, 200, 2)),
            None,
            "no system time passed"
        );
        assert_eq!(cpu_fraction((100, 200, 2), (100, 300, 2)), Some(0.0));
    }

    fn frame(total: u64, system: u64, pre: Option<(u64, u64)>) -> ContainerStatsResponse {
        use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};
        let cpu = |t: u64, s: u64| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(t),
                ..Default::default()
            }),
            system_cpu_usage: Some(s),
            online_cpus: Some(2),
            ..Default::default()
        };
        ContainerStatsResponse {
            cpu_stats: Some(cpu(total, system)),
            precpu_stats: pre.map(|(t, s)| cpu(t, s)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(100),
                limit: Some(1000),
                stats: Some([("inactive_file".to_string(), 30)].into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_one_shot_takes_its_rate_from_the_previous_sample() {
        // A one-shot has no precpu: the first sample has no CPU yet, and
        // keeps its counters for the next.
        let (s, keep) = sample_of_frame("c", &frame(1_000, 10_000, None), None);
        assert_eq!(s.cpu, None);
        assert_eq!(s.memory_bytes, Some(70), "page cache is not counted");
        assert_eq!(s.memory_limit_bytes, Some(1000));
        assert_eq!(keep, Some((1_000, 10_000, 2)));
        let (s, keep) = sample_of_frame("c", &frame(2_000, 14_000, None), keep);
        assert_eq!(s.cpu, Some(0.5), "1,000 of 4,000 ns on 2 cpus");
        assert_eq!(keep, Some((2_000, 14_000, 2)));
        // The engine's precpu wins when filled (a zeroed one does not).
        let (s, _) = sample_of_frame("c", &frame(2_000, 14_000, Some((1_800, 12_000))), keep);
        assert_eq!(s.cpu, Some(0.2));
        let (s, _) = sample_of_frame("c", &frame(3_000, 16_000, Some((0, 0))), keep);
        assert_eq!(s.cpu, Some(1.0));
    }

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<StatsSample> for Sink {
        type Result = ();
        fn handle(&mut self, s: StatsSample, ctx: &mut Context<Self>) {
            if s.container_id == "stop" {
                ctx.stop();
            }
        }
    }

    #[test]
    fn after_a_round_the_sampler_rests_as_long_as_the_round_took() {
        actix::System::new().block_on(async {
            let a = Sink.start();
            let mut feeds = Feeds::default();
            let t0 = Instant::now();
            feeds.follow_at("c1".into(), a.clone().recipient(), None, t0);
            let ms = |n| t0 + SETTLE + Duration::from_millis(n);
            // A quick round (an engine answering at once): the next tick
            // finds it rested.
            assert!(feeds.start_round_at(ms(0)).is_some());
            feeds.end_round_at(vec![], ms(50));
            assert!(feeds.start_round_at(ms(1_000)).is_some());
            // A slow round of 3 s: no round for 3 s after it ended.
            feeds.end_round_at(vec![], ms(4_000));
            assert!(feeds.start_round_at(ms(5_000)).is_none());
            assert!(feeds.start_round_at(ms(6_999)).is_none());
            assert!(feeds.start_round_at(ms(7_000)).is_some());
        });
    }

    #[test]
    fn a_host_gaining_containers_holds_its_rounds_until_it_settles_or_at_most_ten_seconds() {
        actix::System::new().block_on(async {
            let a = Sink.start();
            let mut feeds = Feeds::default();
            let t0 = Instant::now();
            let s = |n: f64| t0 + Duration::from_secs_f64(n);
            // Containers arrive for 1.5 s, then none: the first round is
            // SETTLE after the last one.
            for (i, at) in [0.0, 0.5, 1.0, 1.5].into_iter().enumerate() {
                feeds.follow_at(format!("c{i}"), a.clone().recipient(), None, s(at));
                assert!(feeds.start_round_at(s(at)).is_none(), "settling at {at} s");
            }
            assert!(feeds.start_round_at(s(3.4)).is_none());
            let due = feeds.start_round_at(s(3.5)).expect("settled");
            assert_eq!(due.len(), 4);
            feeds.end_round_at(vec![], s(3.5));
            // A wave: one container a second, never SETTLE apart. Rounds
            // are held HOLD_AT_MOST from the first one followed after the
            // last round, not for the whole wave.
            let mut rounds = vec![];
            for sec in 4..=30 {
                feeds.follow_at(
                    format!("w{sec}"),
                    a.clone().recipient(),
                    None,
                    s(sec as f64),
                );
                if feeds.start_round_at(s(sec as f64)).is_some() {
                    rounds.push(sec);
                    feeds.end_round_at(vec![], s(sec as f64));
                }
            }
            assert_eq!(rounds, vec![14, 25], "held at most 10 s each time");
            // Without new containers, rounds are not held.
            assert!(feeds.start_round_at(s(40.0)).is_some());
        });
    }

    #[test]
    fn rounds_do_not_overlap_and_ended_feeds_are_dropped() {
        actix::System::new().block_on(async {
            let a = Sink.start();
            let mut feeds = Feeds::default();
            // Rounds that take no time: no rest between them.
            let t0 = Instant::now();
            feeds.follow_at("c1".into(), a.clone().recipient(), None, t0);
            feeds.follow_at("c2".into(), a.clone().recipient(), None, t0);
            let t = t0 + SETTLE;
            let due = feeds.start_round_at(t).expect("a round");
            assert_eq!(due.len(), 2);
            assert!(feeds.start_round_at(t).is_none(), "one round at a time");
            // During the round c1's entity moved on to c3.
            feeds.follow_at("c3".into(), a.clone().recipient(), Some("c1"), t);
            feeds.end_round_at(
                vec![
                    ("c1".into(), Outcome::Sampled(Some((1, 2, 1)))),
                    ("c2".into(), Outcome::Ended),
                ],
                t,
            );
            let t = t + SETTLE;
            let mut due: Vec<_> = feeds
                .start_round_at(t)
                .expect("next round")
                .into_iter()
                .map(|(id, _, prev)| (id, prev))
                .collect();
            due.sort();
            assert_eq!(due, vec![("c3".to_string(), None)]);
            feeds.end_round_at(vec![("c3".into(), Outcome::Sampled(Some((5, 6, 1))))], t);
            assert_eq!(feeds.start_round_at(t).unwrap()[0].2, Some((5, 6, 1)));
            feeds.end_round_at(vec![("c3".into(), Outcome::Missed)], t);
            assert_eq!(
                feeds.start_round_at(t).unwrap()[0].2,
                Some((5, 6, 1)),
                "a missed call keeps the last counters"
            );
            feeds.end_round_at(vec![], t);
            // The entity stopped: its feed ends at the next round.
            a.send(StatsSample {
                container_id: "stop".into(),
                cpu: None,
                memory_bytes: None,
                memory_limit_bytes: None,
            })
            .await
            .unwrap();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(feeds.start_round_at(t).is_none());
            assert!(feeds.is_empty());
        });
    }
}
