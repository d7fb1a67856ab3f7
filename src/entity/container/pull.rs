//! The pull of a container's image: the request to its host, the digest
//! pinned for the application, and progress and outcome as sensors
//! (`image.pull`, `image.digest`) and an activity (`image.pull`).

use actix::prelude::*;
use serde_json::json;

use super::ContainerEntity;
use crate::entity::images::ImagePins;
use crate::host::pull::{PullAnswer, PullImage, PullProgress, PullRole};
use crate::host::{workload, DockerHost};
use crate::protocol::now_ms;

/// Sensor: how the image pull goes: `{state: pulling|pulled|present|failed,
/// host, image, layers_done, layers, bytes, total_bytes, ...}`.
pub const IMAGE_PULL: &str = "image.pull";
/// Sensor: the registry digest (`sha256:...`) the container runs.
pub const IMAGE_DIGEST: &str = "image.digest";

impl ContainerEntity {
    /// The pull this container's image needs: none for a built image or
    /// the workload image (made locally, never in a registry).
    pub(super) fn pull_request(&self, ctx: &Context<Self>) -> Option<(PullImage, ImagePins)> {
        if self.spec.build.is_some() {
            return None;
        }
        let image = self.spec.image.clone()?;
        if workload::is_workload_image(&image) {
            return None;
        }
        let msg = PullImage {
            pinned: self.images.get(&image),
            image,
            policy: self.spec.image_pull,
            progress: Some(ctx.address().recipient()),
        };
        Some((msg, self.images.clone()))
    }

    /// Publishes a pull's outcome; a pull that ran (or failed) is recorded.
    pub(super) fn on_pull(&mut self, image: &str, answer: &PullAnswer) {
        let role = serde_json::to_value(answer.role).unwrap_or_default();
        let (sensor, outcome, message, seconds, args) = match &answer.result {
            Ok(r) => {
                match &r.digest {
                    Some(d) => self.board.set(&self.me, IMAGE_DIGEST, json!(d)),
                    None => self.board.clear(&self.me, IMAGE_DIGEST),
                }
                let state = if r.pulled { "pulled" } else { "present" };
                (
                    json!({ "state": state, "host": answer.host, "image": r.reference, "seconds": r.seconds }),
                    "ok",
                    format!(
                        "{image} on host {}: {state} as {}",
                        answer.host, r.reference
                    ),
                    r.seconds,
                    json!({ "image": image, "host": answer.host, "reference": r.reference, "digest": r.digest, "attempts": r.attempts, "role": role }),
                )
            }
            Err(e) => (
                json!({ "state": "failed", "host": answer.host, "image": image, "error": e.to_string() }),
                "error",
                e.to_string(),
                0.0,
                json!({ "image": image, "host": answer.host, "fault": e.fault(), "role": role }),
            ),
        };
        self.board.set(&self.me, IMAGE_PULL, sensor);
        // A pull that ran is recorded once, by the member that led it;
        // a failure by every member it failed.
        let record = answer.role == PullRole::Led || answer.result.is_err();
        if let (true, Some(to)) = (record, &self.activities) {
            to.do_send(crate::activity::RecordActivity(crate::activity::Activity {
                id: 0,
                time_ms: now_ms(),
                application: self.me.app.clone(),
                entity: self.me.entity.clone(),
                kind: "event".into(),
                name: IMAGE_PULL.into(),
                args,
                outcome: outcome.into(),
                message: Some(message),
                duration_seconds: seconds,
            }));
        }
    }
}

impl Handler<PullProgress> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, p: PullProgress, _: &mut Context<Self>) {
        self.board.set(
            &self.me,
            IMAGE_PULL,
            json!({
                "state": "pulling",
                "host": p.host,
                "image": p.image,
                "layers_done": p.layers_done,
                "layers": p.layers,
                "bytes": p.bytes,
                "total_bytes": p.total_bytes,
                "attempt": p.attempt,
            }),
        );
    }
}

/// Pulls (or finds) the image and pins the digest it resolved to. If
/// another member pinned a different digest first (the tag moved between
/// two hosts' pulls), that digest is made present instead: every member
/// runs the first one.
pub(super) async fn pull_and_pin(
    host: Addr<DockerHost>,
    msg: PullImage,
    pins: ImagePins,
) -> Result<PullAnswer, MailboxError> {
    let (image, policy, progress) = (msg.image.clone(), msg.policy, msg.progress.clone());
    let answer = host.send(msg).await?;
    let Some(pin) = answer.result.as_ref().ok().and_then(|r| r.pin()) else {
        return Ok(answer);
    };
    let held = pins.pin(&image, pin.clone());
    if held == pin {
        return Ok(answer);
    }
    let mut again = host
        .send(PullImage {
            image,
            policy,
            pinned: Some(held),
            progress,
        })
        .await?;
    if answer.role == PullRole::Led {
        again.role = PullRole::Led;
    }
    Ok(again)
}
