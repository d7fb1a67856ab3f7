//! Image pulls through a host's engine (`POST /images/create`).
//!
//! [`PullImage`] makes an image a container needs present on this host,
//! according to its `image_pull` policy, pulling it from its registry with
//! the credentials [`super::credentials`] finds. The host actor runs one
//! pull per reference at a time: members that ask while one runs join it
//! and share its progress and outcome (Kubernetes' kubelet serialises
//! pulls per image the same way). Transient failures (a 5xx, a refused or
//! reset connection) are retried with backoff; a missing image, a refused
//! login or a full disk are not, and their errors say which it was.
//!
//! Digest pinning (as Swarm does): the answer carries the digest the tag
//! resolved to (the image's `RepoDigests`); the entity pins it for the
//! application, and later requests name that [`Pin`], so every member on
//! every host runs the same image whatever the tag does meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::credentials::{self, CredentialError};
use super::{fault, DockerHost, HostError, Seen};
use crate::blueprint::image::{ImagePull, ImageRef};

/// A tag pinned to a digest for one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// `repository@sha256:...`: what every member is created from.
    pub reference: String,
    pub digest: String,
    /// The image id (config digest): the same on every engine, kept by an
    /// engine-to-engine copy, so a copied image counts as present.
    pub id: String,
}

/// Makes `image` present on this host (see the module doc).
#[derive(Message)]
#[rtype(result = "PullAnswer")]
pub struct PullImage {
    /// The image as the blueprint names it.
    pub image: String,
    pub policy: ImagePull,
    /// The application's pin for `image`, once it has one.
    pub pinned: Option<Pin>,
    /// Who is told how the pull goes (every waiter of a shared pull).
    pub progress: Option<Recipient<PullProgress>>,
}

/// How a pull goes: layers and bytes so far (sent at most every
/// [`PROGRESS_EVERY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
pub struct PullProgress {
    pub host: String,
    pub image: String,
    pub layers_done: u32,
    pub layers: u32,
    pub bytes: u64,
    pub total_bytes: u64,
    /// The attempt (1 unless a transient failure was retried).
    pub attempt: u32,
}

/// What this request's part in the pull was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullRole {
    /// The image was there: nothing pulled.
    Present,
    /// This request started the registry pull.
    Led,
    /// This request joined a pull already running.
    Joined,
}

/// The image a container can be created from.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// What to create the container from: the pinned `repo@digest`, the
    /// image id, or (no registry digest known) the reference as written.
    pub reference: String,
    /// The registry digest, when known: the sensor `image.digest`.
    pub digest: Option<String>,
    pub id: String,
    /// A registry pull ran (for this request or one it joined).
    pub pulled: bool,
    pub attempts: u32,
    pub seconds: f64,
}

impl Ready {
    /// The pin this outcome gives the application (a registry digest).
    pub fn pin(&self) -> Option<Pin> {
        let digest = self.digest.clone()?;
        self.reference.contains('@').then(|| Pin {
            reference: self.reference.clone(),
            digest,
            id: self.id.clone(),
        })
    }
}

#[derive(Debug, Clone, MessageResponse)]
pub struct PullAnswer {
    pub host: String,
    pub role: PullRole,
    pub result: Result<Ready, PullError>,
}

/// What a failed pull means; decides the retry and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PullFault {
    NotFound,
    Unauthorized,
    /// The registry did not answer (refused, reset, timed out, no such host).
    Unreachable,
    DiskFull,
    /// The registry or engine failed on its side (5xx, a broken stream).
    Transient,
    Other,
}

/// Classifies an engine's pull failure. The engine answers most registry
/// failures with HTTP 500 and the registry's words, so the words decide
/// (the distribution client's error texts, stable across engine versions).
pub fn classify(status: Option<u16>, message: &str) -> PullFault {
    let m = message.to_ascii_lowercase();
    if m.contains("no space left on device") {
        return PullFault::DiskFull;
    }
    if m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("no basic auth credentials")
        || m.contains("denied:")
        || m.contains("incorrect username or password")
    {
        return PullFault::Unauthorized;
    }
    if status == Some(404)
        || m.contains("manifest unknown")
        || m.contains("not found")
        || m.contains("repository does not exist")
        || m.contains("name unknown")
    {
        return PullFault::NotFound;
    }
    if m.contains("connection refused")
        || m.contains("no such host")
        || m.contains("i/o timeout")
        || m.contains("connection reset")
        || m.contains("network is unreachable")
        || m.contains("no route to host")
        || m.contains("tls handshake timeout")
        || m.contains("context deadline exceeded")
    {
        return PullFault::Unreachable;
    }
    match status {
        None => PullFault::Transient,
        Some(s) if s >= 500 => PullFault::Transient,
        Some(_) => PullFault::Other,
    }
}

/// Attempts at most per pull request.
pub const MAX_ATTEMPTS: u32 = 4;

/// The delay before attempt `attempt + 1` after a failure of `fault`, or
/// `None` to stop: only transient failures are retried, 0.5 s doubling
/// (a registry restarting behind a load balancer is back in seconds; a
/// longer outage is the restarter's, which backs off further).
pub fn retry_after(fault: PullFault, attempt: u32) -> Option<Duration> {
    match fault {
        PullFault::Unreachable | PullFault::Transient if attempt < MAX_ATTEMPTS => Some(
            Duration::from_millis(500 << (attempt.saturating_sub(1)).min(6)),
        ),
        _ => None,
    }
}

/// Why an image could not be made present. Each names the image, the host
/// and, for registry failures, the registry.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
pub enum PullError {
    #[error("image `{image}` not found: registry {registry} has no such repository or tag (pull on host {host}: {message}); check the image name and tag")]
    NotFound {
        image: String,
        registry: String,
        host: String,
        message: String,
    },
    #[error("pulling `{image}` on host {host}: unauthorized by registry {registry} with {credentials}: {message}; fix `registries.{registry}` in drover.yaml (username, password_file) or `docker login {registry}` for config.json")]
    Unauthorized {
        image: String,
        registry: String,
        host: String,
        /// Where the credentials came from (never the password).
        credentials: String,
        message: String,
    },
    #[error("registry {registry} unreachable from host {host} to pull `{image}` ({attempts} attempts): {message}; check the registry's address and that the host can reach it")]
    Unreachable {
        image: String,
        registry: String,
        host: String,
        attempts: u32,
        message: String,
    },
    #[error("host {host} has no disk space left to pull `{image}`: {message}; free space there (`docker image prune`) or place the container elsewhere")]
    DiskFull {
        image: String,
        host: String,
        message: String,
    },
    #[error("image `{image}` is not on host {host} and `image_pull: never` forbids pulling it; load it there (`docker pull {image}` or `docker load`) or set `image_pull: if-not-present`")]
    NeverPulled { image: String, host: String },
    #[error("pulling `{image}` on host {host} from registry {registry} failed ({attempts} attempts): {message}")]
    Failed {
        image: String,
        registry: String,
        host: String,
        attempts: u32,
        message: String,
    },
    #[error("image `{image}`: {message}")]
    BadReference { image: String, message: String },
    #[error("pulling `{image}` on host {host}: {message}")]
    Credentials {
        image: String,
        host: String,
        message: String,
    },
    #[error(transparent)]
    Engine(HostError),
}

impl PullError {
    /// The kind of failure (for the restarter's backoff and the tests).
    pub fn fault(&self) -> PullFault {
        match self {
            PullError::NotFound { .. } | PullError::NeverPulled { .. } => PullFault::NotFound,
            PullError::Unauthorized { .. } | PullError::Credentials { .. } => {
                PullFault::Unauthorized
            }
            PullError::Unreachable { .. } => PullFault::Unreachable,
            PullError::DiskFull { .. } => PullFault::DiskFull,
            PullError::Failed { .. } | PullError::Engine(_) => PullFault::Transient,
            PullError::BadReference { .. } => PullFault::Other,
        }
    }
}

/// How often progress is sent to the waiters.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The layers and bytes of a pull, from the engine's progress lines (pure).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Layer id → (bytes so far, total bytes, done).
    layers: std::collections::BTreeMap<String, (u64, u64, bool)>,
}

impl Tally {
    /// Takes one progress line: `status` of layer `id` with its counters.
    pub fn observe(
        &mut self,
        id: Option<&str>,
        status: &str,
        current: Option<i64>,
        total: Option<i64>,
    ) {
        let Some(id) = id else { return };
        // The first line names the tag being pulled, not a layer.
        if status.starts_with("Pulling from")
            || status.starts_with("Digest:")
            || status.starts_with("Status:")
        {
            return;
        }
        let e = self.layers.entry(id.to_string()).or_default();
        match status {
            "Downloading" => {
                if let Some(c) = current {
                    e.0 = c.max(0) as u64;
                }
                if let Some(t) = total.filter(|t| *t > 0) {
                    e.1 = t as u64;
                }
            }
            "Download complete" | "Verifying Checksum" => e.0 = e.1.max(e.0),
            "Pull complete" | "Already exists" => {
                e.0 = e.1.max(e.0);
                e.2 = true;
            }
            _ => {}
        }
    }

    /// (layers done, layers, bytes, total bytes).
    pub fn summary(&self) -> (u32, u32, u64, u64) {
        let done = self.layers.values().filter(|l| l.2).count() as u32;
        let bytes = self.layers.values().map(|l| l.0).sum();
        let total = self.layers.values().map(|l| l.1).sum();
        (done, self.layers.len() as u32, bytes, total)
    }
}

type Waiters = Arc<Mutex<Vec<Recipient<PullProgress>>>>;
type SharedPull = Shared<BoxFuture<'static, Result<Ready, PullError>>>;

/// The pulls in flight on one host, by reference and policy, and the
/// outcome of the last one of each that found or made the image.
#[derive(Default)]
pub struct InFlight {
    pulls: HashMap<String, (SharedPull, Waiters)>,
    /// Answered again while the host believes the image is there (see
    /// `recent`): every container of a deploy asks, and the answer is
    /// the same for seconds.
    present: HashMap<String, Ready>,
}

impl Handler<PullImage> for DockerHost {
    type Result = ResponseFuture<PullAnswer>;
    fn handle(&mut self, msg: PullImage, _: &mut Context<Self>) -> Self::Result {
        let host = self.name.clone();
        let target = match target_of(&msg) {
            Ok(t) => t,
            Err(e) => {
                return Box::pin(async move {
                    PullAnswer {
                        host,
                        role: PullRole::Present,
                        result: Err(e),
                    }
                })
            }
        };
        // `always` with a pin is `if-not-present` of the digest: a digest
        // never changes, so asking the registry again would fetch nothing.
        let policy = match (&msg.policy, &msg.pinned) {
            (ImagePull::Always, Some(_)) => ImagePull::IfNotPresent,
            (p, _) => *p,
        };
        let key = format!("{}|{}", policy.as_str(), target);
        let now = std::time::Instant::now();
        let InFlight { pulls, present } = &mut self.pulls;
        pulls.retain(|k, (f, _)| match f.peek() {
            None => true,
            Some(Ok(ready)) => {
                present.insert(k.clone(), ready.clone());
                self.recent.saw(Seen::Image(k.clone()), now);
                false
            }
            Some(Err(_)) => false,
        });
        // `always` asks the registry every time; the others need only
        // the image to be there, as it was moments ago.
        if policy != ImagePull::Always && self.recent.believed(&Seen::Image(key.clone()), now) {
            if let Some(ready) = present.get(&key) {
                let result = Ok(Ready {
                    pulled: false,
                    attempts: 0,
                    seconds: 0.0,
                    ..ready.clone()
                });
                return Box::pin(async move {
                    PullAnswer {
                        host,
                        role: PullRole::Present,
                        result,
                    }
                });
            }
        }
        let (shared, waiters, led) = match self.pulls.pulls.get(&key) {
            Some((f, w)) => (f.clone(), w.clone(), false),
            None => {
                let waiters: Waiters = Arc::default();
                let job = Job {
                    docker: self.docker.clone(),
                    host: host.clone(),
                    image: msg.image.clone(),
                    target,
                    pinned: msg.pinned.clone(),
                    policy,
                    waiters: waiters.clone(),
                };
                // On the runtime, not the actor: the pull outlives any one
                // waiter, and its outcome is shared by all of them.
                let handle = tokio::spawn(job.run());
                let host2 = host.clone();
                let image = msg.image.clone();
                let f: BoxFuture<'static, Result<Ready, PullError>> = async move {
                    handle.await.unwrap_or_else(|e| {
                        Err(PullError::Engine(HostError::local(
                            format!("pull {image} on {host2}"),
                            format!("the pull task ended: {e}"),
                        )))
                    })
                }
                .boxed();
                let shared = f.shared();
                self.pulls
                    .pulls
                    .insert(key, (shared.clone(), waiters.clone()));
                (shared, waiters, true)
            }
        };
        if let Some(p) = msg.progress {
            waiters.lock().unwrap_or_else(|e| e.into_inner()).push(p);
        }
        Box::pin(async move {
            let result = shared.await;
            let role = match &result {
                Ok(r) if !r.pulled => PullRole::Present,
                // A failure with nothing present: the leader tried the registry.
                _ if led => PullRole::Led,
                _ => PullRole::Joined,
            };
            PullAnswer { host, role, result }
        })
    }
}

/// The reference to make present: the pin, else the image as written.
fn target_of(msg: &PullImage) -> Result<String, PullError> {
    if let Some(p) = &msg.pinned {
        return Ok(p.reference.clone());
    }
    ImageRef::parse(&msg.image).map_err(|e| PullError::BadReference {
        image: msg.image.clone(),
        message: e.to_string(),
    })?;
    Ok(msg.image.clone())
}

struct Job {
    docker: Docker,
    host: String,
    image: String,
    target: String,
    pinned: Option<Pin>,
    policy: ImagePull,
    waiters: Waiters,
}

impl Job {
    async fn run(self) -> Result<Ready, PullError> {
        let t0 = Instant::now();
        let parsed = ImageRef::parse(&self.target).map_err(|e| PullError::BadReference {
            image: self.target.clone(),
            message: e.to_string(),
        })?;
        if self.policy != ImagePull::Always {
            if let Some(ready) = self.present(&parsed).await? {
                return Ok(Ready {
                    seconds: t0.elapsed().as_secs_f64(),
                    ..ready
                });
            }
            if self.policy == ImagePull::Never {
                return Err(PullError::NeverPulled {
                    image: self.target.clone(),
                    host: self.host.clone(),
                });
            }
        }
        let attempts = self.pull(&parsed).await?;
        let mut ready = self.inspect(&parsed, &self.target).await?.ok_or_else(|| {
            PullError::Engine(HostError::local(
                format!("pull {} on {}", self.target, self.host),
                "the image is not there after a successful pull",
            ))
        })?;
        ready.pulled = true;
        ready.attempts = attempts;
        ready.seconds = t0.elapsed().as_secs_f64();
        tracing::info!(host = %self.host, image = %self.image, reference = %ready.reference, attempts, seconds = ready.seconds, "image pulled");
        Ok(ready)
    }

    /// The image, if the host has it: the pin by digest, else by id (an
    /// engine-to-engine copy keeps the id, not the registry digest).
    async fn present(&self, parsed: &ImageRef) -> Result<Option<Ready>, PullError> {
        if let Some(found) = self.inspect(parsed, &self.target).await? {
            return Ok(Some(found));
        }
        if let Some(pin) = &self.pinned {
            if let Ok(i) = super::with_connect_retries(|| self.docker.inspect_image(&pin.id)).await
            {
                if i.id.as_deref() == Some(pin.id.as_str()) {
                    return Ok(Some(Ready {
                        reference: pin.id.clone(),
                        digest: Some(pin.digest.clone()),
                        id: pin.id.clone(),
                        pulled: false,
                        attempts: 0,
                        seconds: 0.0,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Inspects `reference`: `None` if absent.
    async fn inspect(
        &self,
        parsed: &ImageRef,
        reference: &str,
    ) -> Result<Option<Ready>, PullError> {
        let i = match super::with_connect_retries(|| self.docker.inspect_image(reference)).await {
            Ok(i) => i,
            Err(e) => {
                let e = HostError::engine(format!("inspect image {reference}"), e);
                return if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(PullError::Engine(e))
                };
            }
        };
        let digests = i.repo_digests.unwrap_or_default();
        let digest = parsed
            .digest
            .clone()
            .or_else(|| parsed.digest_in(&digests).map(str::to_string));
        Ok(Some(Ready {
            reference: match &digest {
                Some(d) => parsed.at_digest(d),
                None => reference.to_string(),
            },
            digest,
            id: i.id.unwrap_or_default(),
            pulled: false,
            attempts: 0,
            seconds: 0.0,
        }))
    }

    /// Pulls with retries; the attempts it took.
    async fn pull(&self, parsed: &ImageRef) -> Result<u32, PullError> {
        let found = credentials::lookup(&parsed.registry).map_err(|e: CredentialError| {
            PullError::Credentials {
                image: self.target.clone(),
                host: self.host.clone(),
                message: e.to_string(),
            }
        })?;
        let tag = parsed
            .digest
            .clone()
            .or_else(|| parsed.pull_tag())
            .unwrap_or_else(|| "latest".into());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.pull_once(parsed, &tag, &found, attempt).await {
                Ok(()) => return Ok(attempt),
                Err(e) => e,
            };
            let (status, message) = err;
            let fault = classify(status, &message);
            tracing::warn!(host = %self.host, image = %self.target, attempt, ?fault, %message, "image pull failed");
            if let Some(delay) = retry_after(fault, attempt) {
                tokio::time::sleep(delay).await;
                continue;
            }
            let (image, host, registry) = (
                self.target.clone(),
                self.host.clone(),
                parsed.registry.clone(),
            );
            return Err(match fault {
                PullFault::NotFound => PullError::NotFound {
                    image,
                    registry,
                    host,
                    message,
                },
                PullFault::Unauthorized => PullError::Unauthorized {
                    image,
                    registry,
                    host,
                    credentials: found.source.to_string(),
                    message,
                },
                PullFault::Unreachable => PullError::Unreachable {
                    image,
                    registry,
                    host,
                    attempts: attempt,
                    message,
                },
                PullFault::DiskFull => PullError::DiskFull {
                    image,
                    host,
                    message,
                },
                PullFault::Transient | PullFault::Other => PullError::Failed {
                    image,
                    registry,
                    host,
                    attempts: attempt,
                    message,
                },
            });
        }
    }

    /// One pull: the engine's status and message on failure.
    async fn pull_once(
        &self,
        parsed: &ImageRef,
        tag: &str,
        found: &credentials::Found,
        attempt: u32,
    ) -> Result<(), (Option<u16>, String)> {
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&parsed.familiar_repository())
            .tag(tag)
            .build();
        let creds = found.auth.as_ref().map(|a| a.to_docker());
        let mut stream = self.docker.create_image(Some(opts), None, creds);
        let mut tally = Tally::default();
        let mut last_sent: Option<Instant> = None;
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => return Err(fault::status_and_message(&e)),
            };
            if let Some(status) = info.status.as_deref() {
                let (cur, tot) = info
                    .progress_detail
                    .as_ref()
                    .map(|p| (p.current, p.total))
                    .unwrap_or((None, None));
                tally.observe(info.id.as_deref(), status, cur, tot);
            }
            if last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                last_sent = Some(Instant::now());
                self.send_progress(&tally, attempt);
            }
        }
        self.send_progress(&tally, attempt);
        Ok(())
    }

    fn send_progress(&self, tally: &Tally, attempt: u32) {
        let (layers_done, layers, bytes, total_bytes) = tally.summary();
        let p = PullProgress {
            host: self.host.clone(),
            image: self.target.clone(),
            layers_done,
            layers,
            bytes,
            total_bytes,
            attempt,
        };
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|r| r.connected());
        for r in w.iter() {
            r.do_send(p.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_answers_classify() {
        use PullFault::*;
        assert_eq!(
            classify(Some(500), "unauthorized: authentication required"),
            Unauthorized
        );
        assert_eq!(
            classify(
                Some(500),
                "Head \"http://127.0.0.1:5123/v2/x/manifests/v1\": no basic auth credentials"
            ),
            Unauthorized
        );
        assert_eq!(
            classify(
                Some(404),
                "manifest for 127.0.0.1:5123/x:v1 not found: manifest unknown: manifest unknown"
            ),
            NotFound
        );
        assert_eq!(
            classify(Some(500), "Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused"),
            Unreachable
        );
        assert_eq!(
            classify(None, "write /var/lib/docker/tmp/x: no space left on device"),
            DiskFull
        );
        assert_eq!(
            classify(
                Some(500),
                "received unexpected HTTP status: 503 Service Unavailable"
            ),
            Transient
        );
        assert_eq!(classify(None, "error reading from the stream"), Transient);
        assert_eq!(classify(Some(400), "invalid reference format"), Other);
    }

    #[test]
    fn only_transient_failures_are_retried_with_backoff() {
        use PullFault::*;
        assert_eq!(
            retry_after(Unreachable, 1),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(Transient, 2), Some(Duration::from_millis(1000)));
        assert_eq!(retry_after(Transient, 3), Some(Duration::from_millis(2000)));
        assert_eq!(retry_after(Transient, MAX_ATTEMPTS), None);
        for never in [NotFound, Unauthorized, DiskFull, Other] {
            assert_eq!(retry_after(never, 1), None, "{never:?}");
        }
    }

    #[test]
    fn progress_counts_layers_and_bytes() {
        let mut t = Tally::default();
        t.observe(Some("v1"), "Pulling from team/app", None, None);
        t.observe(Some("aaa"), "Pulling fs layer", None, None);
        t.observe(Some("bbb"), "Already exists", None, None);
        t.observe(Some("aaa"), "Downloading", Some(100), Some(400));
        assert_eq!(t.summary(), (1, 2, 100, 400));
        t.observe(Some("aaa"), "Download complete", None, None);
        t.observe(Some("aaa"), "Extracting", Some(10), Some(400));
        t.observe(Some("aaa"), "Pull complete", None, None);
        assert_eq!(t.summary(), (2, 2, 400, 400));
        t.observe(None, "Digest: sha256:00", None, None);
        assert_eq!(t.summary().1, 2);
    }

    #[test]
    fn errors_name_the_registry_and_the_credential_source() {
        let e = PullError::Unauthorized {
            image: "127.0.0.1:5123/x:v1".into(),
            registry: "127.0.0.1:5123".into(),
            host: "local".into(),
            credentials: "credentials from drover.yaml (user `alice`)".into(),
            message: "unauthorized: authentication required".into(),
        };
        let shown = e.to_string();
        assert!(shown.contains("unauthorized by registry 127.0.0.1:5123 with credentials from drover.yaml (user `alice`)"), "{shown}");
        assert_eq!(e.fault(), PullFault::Unauthorized);
        let never = PullError::NeverPulled {
            image: "x:1".into(),
            host: "local".into(),
        };
        assert!(never
            .to_string()
            .contains("`image_pull: never` forbids pulling it"));
    }

    #[test]
    fn a_pin_needs_a_registry_digest() {
        let d = format!("sha256:{}", "0".repeat(64));
        let r = Ready {
            reference: format!("x@{d}"),
            digest: Some(d.clone()),
            id: "sha256:1".into(),
            pulled: true,
            attempts: 1,
            seconds: 0.1,
        };
        assert_eq!(r.pin().unwrap().digest, d);
        let local = Ready {
            reference: "x:1".into(),
            digest: None,
            ..r
        };
        assert_eq!(local.pin(), None);
    }
}
