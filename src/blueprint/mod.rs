//! Blueprints: what a user writes to describe an application.
//!
//! A blueprint is a YAML (or JSON) document naming an application, where it
//! runs (`location`) and its services: single containers and clusters of
//! identical containers, each with its image, ports, resources, health check
//! and policies. This module turns blueprint text into a checked
//! [`Blueprint`]:
//!
//! - [`model`]: the types, as written by users (serde, unknown keys denied);
//! - [`parse`]: text to model, reporting every problem of a file at once, each
//!   with its line, column and path ([`parse_blueprint`], [`BlueprintError`]);
//! - [`validate`]: the semantic rules (ids, required fields, ports, limits),
//!   pure and position-free; [`wiring`]: the rules of references between
//!   services; both report [`problem`]s and share the [`ids`] rule.
//!
//! It knows nothing of actors, Docker or HTTP: the REST API, the CLI and the
//! deployer all call [`parse_blueprint`] and act on its result.
//!
//! ```
//! let bp = drover::blueprint::parse_blueprint(
//!     "example.yaml",
//!     "name: shop\nservices:\n  - id: web\n    type: container\n    image: drover/workload:latest\n",
//! )
//! .unwrap();
//! assert_eq!(bp.services[0].id, "web");
//!
//! let errors = drover::blueprint::parse_blueprint("example.yaml", "name: shop\nservices: []\n")
//!     .unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "example.yaml:2:11: services: an application needs at least one service"
//! );
//! ```

pub mod build_args;
pub mod engine_check;
pub mod health_test;
pub mod ids;
pub mod image;
pub mod lb;
pub mod model;
pub mod parse;
pub mod ports;
mod positions;
pub mod problem;
pub mod ranges;
pub mod secrets;
pub mod size;
pub mod stop;
pub mod update;
pub mod validate;
pub mod volume_checks;
pub mod volumes;
pub mod wiring;

#[cfg(test)]
mod runtime_tests;

pub use health_test::HealthTest;
pub use lb::{LbLimits, LbMode};
pub use model::*;
pub use parse::{
    parse_blueprint, parse_blueprint_with, BlueprintError, BlueprintErrors, ContextCheck,
};
pub use ports::PortSpec;
pub use secrets::SecretRef;
pub use validate::{FieldPath, ValidationError};
