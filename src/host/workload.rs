// TEMPORARY STUB
pub const WORKLOAD_IMAGE: &str = "drover/workload:latest";
#[derive(Debug, thiserror::Error)] #[error("x")] pub struct ImageError;
pub fn is_workload_image(image: &str) -> bool { image == WORKLOAD_IMAGE }
pub async fn ensure_workload_image(_docker: &bollard::Docker) -> Result<String, ImageError> { Err(ImageError) }
pub async fn build_workload_image(_docker: &bollard::Docker) -> Result<String, ImageError> { Err(ImageError) }
