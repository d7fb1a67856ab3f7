//! `drover serve`: the actors and the HTTP server in one actix System.
//!
//! One System over a multi-thread tokio runtime (DESIGN.md's runtime
//! shape). SIGTERM or SIGINT stops the HTTP server gracefully, then the
//! System; managed containers keep running, for the next start to find.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix::prelude::*;
use actix_web::{web, App, HttpServer};

use crate::entity::Placement;
use crate::host::{self, DockerHost};
use crate::management::{Apply, Management};

/// The preset directory `drover serve` reads when given none: the
/// repository's `policies/`, whose presets are also built in.
pub const DEFAULT_POLICIES: &str = "policies";

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port (printed at start).
    pub listen: String,
    /// Blueprints to deploy once the service is up.
    pub deploy: Vec<PathBuf>,
    /// Docker endpoint of the `local` location: `local` (the default
    /// socket), `unix:///path`, or `tcp://host:port`.
    pub docker: String,
    /// Directory of policy presets added to (or overriding) the built-in
    /// ones; edits are reloaded.
    pub policies: PathBuf,
    /// The durable store (redb file).
    pub store: PathBuf,
    /// Application networks get a subnet of `subnet_size` from this pool.
    pub subnets: host::subnets::SubnetPool,
    /// `drover.yaml`: the locations beyond `local` (see [`crate::location`]).
    pub config: Option<PathBuf>,
    /// `--tls-cert` and `--tls-key`: serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `--insecure-http`: plain HTTP on a non-loopback address.
    pub insecure_http: bool,
    /// `--allow-host`: more names clients may reach drover by (the `Host`
    /// header), beyond its address and localhost.
    pub allow_hosts: Vec<String>,
    /// `--max-build-context`: the largest build context (tar bytes) an
    /// upload may be.
    pub max_build_context: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error("cannot listen on {listen}: {source}; is another drover running there? Use --listen to pick another address")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error("cannot read blueprint {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Blueprint(crate::blueprint::BlueprintErrors),
    #[error("deploying {path} failed: {message}")]
    Deploy { path: String, message: String },
    #[error("policy presets are invalid:\n{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Presets(Vec<crate::policy::PresetError>),
    #[error("{0}")]
    Store(crate::store::StoreError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] crate::api::tls::TlsError),
    #[error("{0}")]
    Tokens(#[from] crate::api::tokens::TokenError),
    #[error("the runtime failed: {0}")]
    Runtime(std::io::Error),
}

/// Runs the service until SIGTERM/SIGINT.
pub fn run(opts: ServeOptions) -> Result<(), ServeError> {
    crate::metrics::init();
    let system = System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("drover-rt")
            .build()
            .expect("tokio runtime builds")
    });
    system.block_on(serve(opts))
}

async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    // Before anything else: a listener off the machine speaks HTTPS.
    let tls = crate::api::tls::listener_rule(
        &opts.listen,
        opts.tls_cert.as_deref(),
        opts.tls_key.as_deref(),
        opts.insecure_http,
    )?;
    let tls = match tls {
        Some((cert, key)) => Some(crate::api::tls::server_config(&cert, &key)?),
        None => None,
    };
    // The built-in presets, with the preset directory's added or
    // overriding them. The default directory (`policies`, relative) exists
    // only in the repository; elsewhere the built-in presets serve alone.
    let presets = if opts.policies.is_dir() {
        crate::policy::Presets::builtin()
            .with_dir(&opts.policies)
            .map_err(ServeError::Presets)?
    } else {
        if opts.policies != std::path::Path::new(DEFAULT_POLICIES) {
            tracing::warn!(dir = %opts.policies.display(), "no policy preset directory there; the built-in presets only");
        }
        crate::policy::Presets::builtin()
    };
    // Read and validate the blueprints first: a bad file stops start-up
    // before anything is created. The same validation as `drover validate`;
    // the server's deploy adds the location and build-context checks.
    let mut blueprints = Vec::new();
    for path in &opts.deploy {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        crate::policy::validate::validate_blueprint(
            &path.display().to_string(),
            &text,
            &crate::policy::validate::ValidationContext::offline(&presets),
        )
        .map_err(ServeError::Blueprint)?;
        blueprints.push((path.display().to_string(), text));
    }

    // The store before anything else: a bad one stops start-up before
    // drover manages (or removes) anything.
    let store_path = opts.store.clone();
    let (store, snapshot, (tokens, bootstrap)) = tokio::task::spawn_blocking(move || {
        let store = crate::store::Store::open(&store_path).map_err(ServeError::Store)?;
        let snapshot = store.load().map_err(ServeError::Store)?;
        let owner = store.instance_id().map_err(ServeError::Store)?;
        let _ = host::OWNER.set(owner);
        let tokens = crate::api::tokens::bootstrap(&store, &store_path)?;
        Ok::<_, ServeError>((store, snapshot, tokens))
    })
    .await
    .map_err(|e| ServeError::Runtime(std::io::Error::other(e.to_string())))??;
    tracing::info!(store = %opts.store.display(), applications = snapshot.apps.len(), "store opened");
    log_bootstrap(&bootstrap);
    let uploads = crate::build_context::Uploads::beside_store(&opts.store);
    sweep_uploads(&uploads, &snapshot);
    let store = crate::store::StoreActor::start(store);
    let auth = std::sync::Arc::new(crate::api::auth::AuthConfig {
        tokens: std::sync::Arc::new(crate::api::tokens::Tokens::new(
            tokens,
            Some(store.clone()),
        )?),
        allow_hosts: opts.allow_hosts.clone(),
    });
    // Locations of drover.yaml: their engines answer (or start-up stops)
    // before anything is managed.
    let config = match &opts.config {
        Some(p) => {
            crate::location::config::load(p).map_err(|e| ServeError::Config(e.to_string()))?
        }
        None => crate::location::DroverConfig::default(),
    };
    // local-dockerd's hosts live beside the store unless drover.yaml says
    // where (never in a world-writable /tmp by default).
    let mut config = config;
    for loc in config.locations.values_mut() {
        if loc.provisioner.dir.is_none() {
            loc.provisioner.dir = Some(crate::location::provision::default_hosts_dir(&opts.store));
        }
    }
    // Secrets are mounted from these files; only their names go further.
    let _ =
        host::runtime::SECRET_FILES.set(crate::location::secrets::secret_files(&config.secrets));
    // Registry credentials for pulls: every password file readable now.
    host::credentials::install(&config.registries)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    for (name, st) in &snapshot.locations {
        if !config.locations.contains_key(name) && !st.hosts.is_empty() {
            let hosts: Vec<&str> = st.hosts.iter().map(|h| h.name.as_str()).collect();
            tracing::warn!(location = %name, hosts = ?hosts, "the store holds hosts drover provisioned for a location drover.yaml no longer has: they keep running, unmanaged; put the location back to adopt (and later decommission) them, or remove them by hand");
        }
    }
    let mut pools = Vec::new();
    for (name, loc) in &config.locations {
        let hosts =
            crate::location::start::connect_location(name, loc, snapshot.locations.get(name))
                .await
                .map_err(|e| ServeError::Config(e.to_string()))?;
        tracing::info!(location = %name, hosts = hosts.len(), "location connected");
        let services = crate::location::pool::PoolServices {
            uploads: Some(uploads.clone()),
            store: Some(store.clone().recipient()),
            activities: None,
            saved: snapshot.locations.get(name).cloned(),
            autoscaler_saved: snapshot
                .policies
                .get(&(
                    crate::location::pool::POOL_APP.to_string(),
                    name.clone(),
                    crate::location::pool::POOL_AUTOSCALER.to_string(),
                ))
                .cloned(),
        };
        pools.push((name.clone(), loc.clone(), hosts, services));
    }
    let allowed_host_paths = config.allowed_host_paths.clone();
    let build_roots = config.build_roots.clone();
    let docker = host::connect(&opts.docker).await?;
    let host_address = host_address_of(&opts.docker);
    let mgmt = Management::create(|ctx| {
        let host = DockerHost::new(
            "local".into(),
            host_address.clone(),
            docker,
            ctx.address().recipient(),
            ctx.address().recipient(),
        )
        .with_subnet_pool(opts.subnets)
        .with_uploads(Some(uploads.clone()))
        .with_machine_stats(ctx.address().recipient())
        .start();
        let placement = Placement {
            host,
            host_name: "local".into(),
            host_address: host_address.clone(),
            network: None,
            pool: None,
        };
        let mut locations = BTreeMap::from([("local".to_string(), placement)]);
        let mut pool_actors = BTreeMap::new();
        for (name, loc, hosts, mut services) in pools {
            services.activities = Some(ctx.address().recipient());
            let (at, pool) = crate::location::start::start_location(
                &name,
                loc,
                hosts,
                ctx.address().recipient(),
                ctx.address().recipient(),
                services,
            );
            locations.insert(name.clone(), at);
            pool_actors.insert(name, pool);
        }
        let mut mgmt = Management::new(locations);
        // Load balancers run as processes of their own beside the store,
        // so they outlive this drover (crash, upgrade); an etcd store has
        // no directory of its own, so they keep to the working directory.
        if let Some(dir) = lb_agents_dir(&opts.store) {
            mgmt = mgmt.with_lb_agents(dir);
        }
        mgmt.with_pools(pool_actors)
            .with_presets(presets)
            .with_store(store, snapshot)
            .with_allowed_host_paths(allowed_host_paths)
            .with_build_roots(build_roots)
            .with_uploads(uploads.clone())
    });

    let data = web::Data::new(mgmt.clone());
    let tokens = web::Data::from(auth.tokens.clone());
    let contexts = web::Data::new(crate::api::contexts::ContextService {
        uploads: uploads.clone(),
        max_bytes: opts.max_build_context,
    });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(crate::api::auth::Guard::new(auth.clone()))
            .app_data(data.clone())
            .app_data(tokens.clone())
            .app_data(contexts.clone())
            .configure(crate::api::routes)
    })
    .workers(2)
    // Effector calls (a resize of many members) can take a while.
    .client_request_timeout(std::time::Duration::from_secs(10))
    .shutdown_timeout(5);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(&opts.listen, config),
        None => server.bind(&opts.listen),
    }
    .map_err(|source| ServeError::Bind {
        listen: opts.listen.clone(),
        source,
    })?;
    let addrs = server.addrs();
    let server = server.run();
    for a in &addrs {
        // Tests and scripts read this line to find a port chosen with :0.
        println!("drover listening on {scheme}://{a}");
    }
    tracing::info!(addresses = ?addrs, "drover serving");

    // `--deploy` is an apply: a second start with the same file finds the
    // application rebound from the store and changes nothing; an edited
    // file is applied (the plan is printed and recorded as activities).
    for (path, text) in blueprints {
        // The operator's own file: its build contexts are packed here, as
        // the CLI would, and kept as uploads.
        let text =
            keep_contexts(&path, &text, &uploads, opts.max_build_context).map_err(|message| {
                ServeError::Deploy {
                    path: path.clone(),
                    message,
                }
            })?;
        let plan = mgmt
            .send(Apply {
                file: path.clone(),
                text,
                app: None,
                dry_run: false,
            })
            .await
            .map_err(|e| ServeError::Deploy {
                path: path.clone(),
                message: e.to_string(),
            })?
            .map_err(|e| ServeError::Deploy {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if plan.create {
            println!("deployed {path} as application `{}`", plan.app);
        } else if plan.noop {
            println!(
                "application `{}` of {path} is already running; nothing to apply",
                plan.app
            );
        } else {
            println!(
                "applied {path} to application `{}`: {}",
                plan.app,
                crate::management::apply_summary(&plan)
            );
        }
    }

    let r = server.await.map_err(ServeError::Runtime);
    tracing::info!("drover stopped; managed containers keep running");
    System::current().stop();
    r
}

/// Packs the build contexts of a `--deploy` file (relative to its
/// directory) into the upload directory, and names them in the text.
fn keep_contexts(
    path: &str,
    text: &str,
    uploads: &crate::build_context::Uploads,
    max: u64,
) -> Result<String, String> {
    let base = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    crate::build_context::rewrite::rewrite_contexts(text, |site| {
        if crate::build_context::UploadRef::parse(&site.value).is_some() {
            return Ok(None);
        }
        let dir = base.join(&site.value);
        let packed = crate::build_context::pack_context(
            &dir,
            site.dockerfile.as_deref().unwrap_or("Dockerfile"),
            max,
        )
        .map_err(|e| e.to_string())?;
        let kept = uploads.put(&packed.tar).map_err(|e| e.to_string())?;
        Ok(Some(kept.reference.to_string()))
    })
}

/// Removes uploaded build contexts no stored application names (older
/// than an hour, so an upload on its way to a deploy stays).
fn sweep_uploads(uploads: &crate::build_context::Uploads, snapshot: &crate::store::Snapshot) {
    let text = serde_json::to_string(&(&snapshot.apps, &snapshot.clusters)).unwrap_or_default();
    let prefix = crate::build_context::uploads::PREFIX;
    let keep: std::collections::BTreeSet<String> = text
        .match_indices(prefix)
        .filter_map(|(i, _)| text.get(i + prefix.len()..i + prefix.len() + 64))
        .map(str::to_string)
        .collect();
    let removed = uploads.sweep(&keep, std::time::Duration::from_secs(3600));
    if removed > 0 {
        tracing::info!(
            removed,
            kept = keep.len(),
            "removed uploaded build contexts no application names"
        );
    }
}

/// Says where the admin token is (never the token).
fn log_bootstrap(b: &crate::api::tokens::Bootstrap) {
    use crate::api::tokens::Bootstrap;
    match b {
        Bootstrap::Created(p) => {
            tracing::info!(file = %p.display(), "made an admin API token (the CLI on this machine reads it for the default store; `drover token create` makes more)")
        }
        Bootstrap::Kept(p) => tracing::info!(file = %p.display(), "admin API token"),
        Bootstrap::Stale(p) => {
            tracing::warn!(file = %p.display(), "the admin token file holds a token that is no longer valid (revoked?); remove the file to have a new one made at the next start")
        }
    }
}

/// Where published ports of an engine are reached from drover.
fn host_address_of(endpoint: &str) -> String {
    endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.split(':').next())
        .map(str::to_string)
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// Where the load-balancer processes keep their state files: `lb-agents/`
/// beside a file store; for an etcd store, `drover-lb-agents/` in the
/// working directory.
fn lb_agents_dir(store: &std::path::Path) -> Option<PathBuf> {
    let text = store.to_string_lossy();
    if text.starts_with("etcd://") {
        return std::path::absolute("drover-lb-agents").ok();
    }
    let parent = store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    Some(std::path::absolute(parent).ok()?.join("lb-agents"))
}
