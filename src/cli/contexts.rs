//! Build contexts go to the service as uploads: the CLI packs each
//! directory a blueprint names (with its `.dockerignore`, on the user's
//! machine), sends the tar unless the service already holds it, and puts
//! `upload:sha256:<hex>` in place of the path. The service never reads a
//! path the client names.

use std::path::Path;

use super::{import::Prepared, CliError, Client};
use crate::build_context::{pack_context, rewrite::rewrite_contexts, UploadRef};
use crate::wire::{BuildContextLimits, UploadedContext};

/// Uploads every directory context of `p` and rewrites its text to name
/// the uploads. A blueprint without build contexts costs no request.
pub fn upload_contexts(c: &Client, p: &mut Prepared) -> Result<(), CliError> {
    let mut limits: Option<BuildContextLimits> = None;
    let file = p.file.clone();
    p.text = rewrite_contexts(&p.text, |site| {
        if UploadRef::parse(&site.value).is_some() {
            return Ok(None);
        }
        let max = match &limits {
            Some(l) => l.max_bytes,
            None => limits.insert(c.get_ok("/v1/build-contexts")?).max_bytes,
        };
        let dockerfile = site.dockerfile.as_deref().unwrap_or("Dockerfile");
        let packed = pack_context(Path::new(&site.value), dockerfile, max).map_err(|e| {
            CliError::Invalid(format!(
                "{file}:{}:{}: {}: {e}",
                site.line, site.column, site.path
            ))
        })?;
        let hex = crate::build_context::sha256_hex(&packed.tar);
        let held = c.get(&format!("/v1/build-contexts/{hex}"))?;
        let uploaded: UploadedContext = if held.status == 404 {
            c.post_bytes("/v1/build-contexts", "application/x-tar", &packed.tar)?
                .decode()?
        } else {
            held.decode()?
        };
        Ok::<_, CliError>(Some(uploaded.reference))
    })?;
    Ok(())
}
