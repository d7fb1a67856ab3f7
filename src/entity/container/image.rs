//! The image build of a container with `build`, as a sensor and an activity.

use actix::prelude::*;
use serde_json::json;

use super::ContainerEntity;
use crate::host::build::{BuildProgress, ImageReady};
use crate::protocol::now_ms;

/// The image build of a container with `build`: `building`, the current
/// build step, then `built <tag>`, `reused <tag>` or `failed: ...`.
pub const IMAGE_BUILD: &str = "image.build";

impl ContainerEntity {
    pub(super) fn on_image(&mut self, outcome: Result<ImageReady, crate::host::HostError>) {
        let (text, name, result, message, seconds) = match &outcome {
            Ok(r) if r.built => (
                format!("built {} in {:.1}s", r.image, r.seconds),
                "image.build",
                "ok",
                format!("built {} ({})", r.image, r.id),
                r.seconds,
            ),
            Ok(r) => (
                format!("reused {}", r.image),
                "image.reused",
                "ok",
                format!(
                    "reused {} ({}): the build context is unchanged",
                    r.image, r.id
                ),
                r.seconds,
            ),
            Err(e) => (
                format!("failed: {e}"),
                "image.build",
                "error",
                e.to_string(),
                0.0,
            ),
        };
        self.board.set(&self.me, IMAGE_BUILD, json!(text));
        if let Ok(r) = &outcome {
            self.board.set(&self.me, "image.id", json!(r.id));
        }
        if let Some(to) = &self.activities {
            to.do_send(crate::activity::RecordActivity(crate::activity::Activity {
                id: 0,
                time_ms: now_ms(),
                application: self.me.app.clone(),
                entity: self.me.entity.clone(),
                kind: "event".into(),
                name: name.into(),
                args: json!({ "context": self.spec.build.as_ref().map(|b| b.context.clone()) }),
                outcome: result.into(),
                message: Some(message),
                duration_seconds: seconds,
            }));
        }
    }
}

impl Handler<BuildProgress> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, BuildProgress(line): BuildProgress, _: &mut Context<Self>) {
        if line.starts_with("Step ") {
            self.board
                .set(&self.me, IMAGE_BUILD, json!(format!("building: {line}")));
        }
    }
}
