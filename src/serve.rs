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
    /// The durable store (redb file). With `etcd`, where the files drover
    /// keeps beside its store go (`admin.token`, provisioned hosts): the
    /// file itself is never made.
    pub store: PathBuf,
    /// `--store etcd://...`: the state in etcd, and leadership.
    pub etcd: Option<EtcdServe>,
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

/// A drover of a cluster on etcd.
#[derive(Debug, Clone)]
pub struct EtcdServe {
    pub opts: crate::store::EtcdOptions,
    /// `--leader-ttl`: the leader's lease (default
    /// [`crate::store::election::DEFAULT_TTL`]).
    pub ttl: std::time::Duration,
    /// `--advertise-url`: how the others and clients reach this drover
    /// (default: the scheme and the address it listens on).
    pub advertise: Option<String>,
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
    let target = match &opts.etcd {
        Some(e) => crate::store::StoreTarget::Etcd(e.opts.clone()),
        None => crate::store::StoreTarget::Redb(opts.store.clone()),
    };
    let fence = crate::store::Fence::default();
    let (store, (tokens, bootstrap)) = {
        let (target, fence) = (target.clone(), fence.clone());
        tokio::task::spawn_blocking(move || {
            let store =
                crate::store::Store::open_target(&target, fence).map_err(ServeError::Store)?;
            let owner = store.instance_id().map_err(ServeError::Store)?;
            let _ = host::OWNER.set(owner);
            let tokens = crate::api::tokens::bootstrap(&store, &store_path)?;
            Ok::<_, ServeError>((store, tokens))
        })
        .await
        .map_err(|e| ServeError::Runtime(std::io::Error::other(e.to_string())))??
    };
    log_bootstrap(&bootstrap);
    let uploads = crate::build_context::Uploads::beside_store(&opts.store);
    let store = crate::store::StoreActor::start(store);
    let contexts = web::Data::new(crate::api::contexts::ContextService {
        uploads: uploads.clone(),
        max_bytes: max_build_context(&opts),
        store: opts.etcd.as_ref().map(|_| store.clone()),
    });
    let auth = std::sync::Arc::new(crate::api::auth::AuthConfig {
        tokens: std::sync::Arc::new(crate::api::tokens::Tokens::new(
            tokens,
            Some(store.clone()),
        )?),
        allow_hosts: opts.allow_hosts.clone(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener =
        std::net::TcpListener::bind(&opts.listen).map_err(|source| ServeError::Bind {
            listen: opts.listen.clone(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Bind {
        listen: opts.listen.clone(),
        source,
    })?;
    // On etcd: stand by (serving what a standby serves) until this drover
    // leads; then manage, from the store as it is at that moment.
    let leadership = match &opts.etcd {
        Some(e) => {
            let me = e
                .advertise
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{bound}"));
            let standby = Standby {
                contexts: contexts.clone(),
                forwarder: web::Data::new(crate::api::standby::Forwarder::new(
                    opts.tls_cert.as_deref(),
                )),
            };
            match stand_by(
                e,
                me,
                fence,
                &store,
                &auth,
                &listener,
                tls.clone(),
                scheme,
                bound,
                standby,
            )
            .await?
            {
                Some(l) => Some(l),
                None => {
                    tracing::info!("stopped while standing by");
                    System::current().stop();
                    return Ok(());
                }
            }
        }
        None => {
            crate::metrics::LEADER.set(1);
            None
        }
    };
    let role = leadership.as_ref().map(|(_, _, role)| role.clone());
    let snapshot = store
        .send(crate::store::Load)
        .await
        .map_err(|e| ServeError::Runtime(std::io::Error::other(e.to_string())))?
        .map_err(ServeError::Store)?;
    tracing::info!(store = %target.shown(), applications = snapshot.apps.len(), "store opened");
    if leadership.is_some() {
        // Contexts uploaded through the drover that led before: built
        // from here on, so fetched now (the standby mirrored most).
        restore_uploads(&uploads, &snapshot, &store).await;
    }
    sweep_uploads(&uploads, &snapshot, leadership.is_some().then_some(&store));
    if leadership.is_some() {
        // Tokens made or revoked by the drover that led before.
        auth.tokens.replace(&snapshot.tokens)?;
    }
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
    let store_for_uploads = store.clone();
    let view = crate::management::ReadView::default();
    let view_for_mgmt = view.clone();
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
        // Load balancers run as containers of their own on their location's
        // engine, so they outlive this drover (crash, upgrade, takeover).
        Management::new(locations)
            .with_lb_containers()
            .with_pools(pool_actors)
            .with_presets(presets)
            .with_store(store, snapshot)
            .with_allowed_host_paths(allowed_host_paths)
            .with_build_roots(build_roots)
            .with_uploads(uploads.clone())
            .with_view(view_for_mgmt)
    });

    // The API reads the view without a message: not before the stored
    // applications are in it.
    if mgmt.send(crate::management::Started).await.is_err() {
        tracing::error!("the management actor stopped while starting");
    }
    let data = web::Data::new(mgmt.clone());
    let view = web::Data::new(view);
    let tokens = web::Data::from(auth.tokens.clone());
    let role_data = role.map(web::Data::new);
    let server = HttpServer::new(move || {
        let app = App::new()
            .wrap(crate::api::auth::Guard::new(auth.clone()))
            .app_data(data.clone())
            .app_data(view.clone())
            .app_data(tokens.clone())
            .app_data(contexts.clone());
        match &role_data {
            Some(r) => app.app_data(r.clone()),
            None => app,
        }
        .configure(crate::api::routes)
    })
    .workers(2)
    // Effector calls (a resize of many members) can take a while.
    .client_request_timeout(std::time::Duration::from_secs(10))
    .shutdown_timeout(5);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config),
        None => server.listen(listener),
    }
    .map_err(|source| ServeError::Bind {
        listen: opts.listen.clone(),
        source,
    })?;
    let server = server.run();
    if let Some((_, _, role)) = &leadership {
        // Serving as the leader from here: /healthz and the gauge say so.
        role.lead();
    }
    if leadership.is_none() {
        // Tests and scripts read this line to find a port chosen with :0
        // (a drover on etcd printed it when it began standing by).
        println!("drover listening on {scheme}://{bound}");
    }
    tracing::info!(address = %bound, "drover serving");

    // `--deploy` is an apply: a second start with the same file finds the
    // application rebound from the store and changes nothing; an edited
    // file is applied (the plan is printed and recorded as activities).
    for (path, text) in blueprints {
        // The operator's own file: its build contexts are packed here, as
        // the CLI would, and kept as uploads.
        let text =
            keep_contexts(&path, &text, &uploads, max_build_context(&opts)).map_err(|message| {
                ServeError::Deploy {
                    path: path.clone(),
                    message,
                }
            })?;
        if opts.etcd.is_some() {
            share_uploads(&uploads, &text, &store_for_uploads)
                .await
                .map_err(|message| ServeError::Deploy {
                    path: path.clone(),
                    message,
                })?;
        }
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
    if let Some((election, l, _)) = leadership {
        // A graceful stop hands over at once, not after the TTL.
        election.resign(l).await;
    }
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

/// `--max-build-context`, at most [`crate::store::ETCD_UPLOAD_MAX`] on
/// etcd (each upload is kept there for the cluster).
fn max_build_context(opts: &ServeOptions) -> u64 {
    match &opts.etcd {
        Some(_) => opts.max_build_context.min(crate::store::ETCD_UPLOAD_MAX),
        None => opts.max_build_context,
    }
}

/// The digests of the uploaded contexts `text` names (pure).
fn named_uploads(text: &str) -> std::collections::BTreeSet<String> {
    let prefix = crate::build_context::uploads::PREFIX;
    text.match_indices(prefix)
        .filter_map(|(i, _)| text.get(i + prefix.len()..i + prefix.len() + 64))
        .filter(|hex| crate::build_context::UploadRef::from_hex(hex).is_ok())
        .map(str::to_string)
        .collect()
}

/// The uploaded contexts the stored applications name (their blueprints,
/// and the member specs of kept revisions).
fn stored_uploads(snapshot: &crate::store::Snapshot) -> std::collections::BTreeSet<String> {
    named_uploads(&serde_json::to_string(&(&snapshot.apps, &snapshot.clusters)).unwrap_or_default())
}

/// Keeps in etcd the contexts a `--deploy` file's text names.
async fn share_uploads(
    uploads: &crate::build_context::Uploads,
    text: &str,
    store: &Addr<crate::store::StoreActor>,
) -> Result<(), String> {
    for hex in named_uploads(text) {
        let r = crate::build_context::UploadRef::from_hex(&hex).map_err(|e| e.to_string())?;
        let tar = uploads.read(&r).map_err(|e| e.to_string())?;
        store
            .send(crate::store::UploadOp::Put { hex, tar })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Fetches from etcd each context the store names that this drover's
/// upload directory lacks (one uploaded through another drover). A
/// context that cannot be had is logged: the build that needs it fails
/// with the upload's own error.
pub(crate) async fn restore_uploads(
    uploads: &crate::build_context::Uploads,
    snapshot: &crate::store::Snapshot,
    store: &Addr<crate::store::StoreActor>,
) {
    for hex in stored_uploads(snapshot) {
        let Ok(r) = crate::build_context::UploadRef::from_hex(&hex) else {
            continue;
        };
        if uploads.contains(&r) {
            continue;
        }
        match store.send(crate::store::UploadOp::Get(hex.clone())).await {
            Ok(Ok(Some(tar))) => match uploads.put(&tar) {
                Ok(_) => {
                    tracing::info!(context = %r, bytes = tar.len(), "build context fetched from the store")
                }
                Err(e) => {
                    tracing::warn!(context = %r, error = %e, "cannot keep a build context fetched from the store")
                }
            },
            Ok(Ok(None)) => {
                tracing::warn!(context = %r, "a stored application names a build context the store does not hold (uploaded before drover kept uploads in etcd?): deploy its blueprint again to upload it")
            }
            Ok(Err(e)) => {
                tracing::warn!(context = %r, error = %e, "cannot read a build context from the store")
            }
            Err(e) => tracing::warn!(context = %r, error = %e, "the store did not answer"),
        }
    }
}

/// Removes uploaded build contexts no stored application names (older
/// than an hour, so an upload on its way to a deploy stays): here, and,
/// for a leader on etcd, in the store.
fn sweep_uploads(
    uploads: &crate::build_context::Uploads,
    snapshot: &crate::store::Snapshot,
    store: Option<&Addr<crate::store::StoreActor>>,
) {
    let keep = stored_uploads(snapshot);
    if let Some(store) = store {
        store.do_send(crate::store::UploadOp::Sweep(keep.clone()));
    }
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
        Bootstrap::Elsewhere(p) => {
            tracing::warn!(file = %p.display(), "another drover of the cluster made the admin token: copy its admin.token to this file for the CLI here, or use a token from `drover token create`")
        }
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

/// What the standby's server shares with the leader's, or has of its own.
struct Standby {
    contexts: web::Data<crate::api::contexts::ContextService>,
    forwarder: web::Data<crate::api::standby::Forwarder>,
}

/// A drover on etcd until it leads: serves the standby's routes on
/// `listener`, follows the store, campaigns. Returns the leadership
/// (guarded: losing it ends the process) once the standby server stopped,
/// or `None` when a signal stopped the standby first.
#[allow(clippy::too_many_arguments)]
async fn stand_by(
    e: &EtcdServe,
    me: String,
    fence: crate::store::Fence,
    store: &Addr<crate::store::StoreActor>,
    auth: &std::sync::Arc<crate::api::auth::AuthConfig>,
    listener: &std::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    scheme: &str,
    bound: std::net::SocketAddr,
    standby: Standby,
) -> Result<
    Option<(
        std::sync::Arc<crate::store::election::Election>,
        crate::store::election::Leadership,
        crate::leader::Role,
    )>,
    ServeError,
> {
    use crate::api::standby::Followed;
    let election = std::sync::Arc::new(
        crate::store::election::Election::connect(&e.opts, e.ttl, me.clone(), fence)
            .await
            .map_err(ServeError::Store)?,
    );
    let role = crate::leader::Role::standby(me);
    // Name the leader from the first answer on.
    if let Ok(Some((leader, _))) = election.leader().await {
        role.saw(Some(leader));
    }
    let followed: Followed = Default::default();
    let bind_err = |source| ServeError::Bind {
        listen: bound.to_string(),
        source,
    };
    let copy = listener.try_clone().map_err(bind_err)?;
    let mirror = standby.contexts.uploads.clone();
    let server = {
        let (role, followed, auth) = (
            web::Data::new(role.clone()),
            web::Data::new(followed.clone()),
            auth.clone(),
        );
        let tokens = web::Data::from(auth.tokens.clone());
        HttpServer::new(move || {
            App::new()
                // Inside the guard: a read is authorised here before it
                // is forwarded (and again by the leader).
                .wrap(actix_web::middleware::from_fn(crate::api::standby::reads))
                .wrap(crate::api::auth::Guard::new(auth.clone()))
                .app_data(role.clone())
                .app_data(followed.clone())
                .app_data(tokens.clone())
                .app_data(standby.contexts.clone())
                .app_data(standby.forwarder.clone())
                .configure(crate::api::standby::routes)
        })
        .workers(1)
        .shutdown_timeout(1)
        // No idle connection to break when the leader's server takes the
        // listener over: a client's next request queues for it instead.
        .keep_alive(actix_web::http::KeepAlive::Disabled)
    };
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(copy, config),
        None => server.listen(copy),
    }
    .map_err(bind_err)?
    .run();
    let handle = server.handle();
    let mut server = actix_rt::spawn(server);
    println!("drover listening on {scheme}://{bound}");
    tracing::info!(address = %bound, "standing by: the leader manages");
    // The read model follows etcd: a reload after every change.
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    changed.notify_one();
    let follow = {
        let (election, changed) = (election.clone(), changed.clone());
        actix_rt::spawn(async move {
            let _ = election.follow(|| changed.notify_one()).await;
        })
    };
    let reload = {
        let (store, followed, auth) = (store.clone(), followed.clone(), auth.clone());
        let uploads = mirror;
        actix_rt::spawn(async move {
            loop {
                changed.notified().await;
                if let Ok(Ok(snap)) = store.send(crate::store::Load).await {
                    if let Err(e) = auth.tokens.replace(&snap.tokens) {
                        tracing::warn!(error = %e, "a stored token is unreadable; the tokens in force stay as they were");
                    }
                    // Mirrored as soon as the store names them: ready to
                    // build from if this drover takes over.
                    restore_uploads(&uploads, &snap, &store).await;
                    *followed.write().unwrap_or_else(|e| e.into_inner()) = snap;
                }
            }
        })
    };
    let won = tokio::select! {
        l = crate::leader::stand_by(&election, &role) => Some(l),
        // SIGTERM/SIGINT stop the standby's server: nothing to hand over.
        _ = &mut server => None,
    };
    follow.abort();
    reload.abort();
    let Some(l) = won else {
        return Ok(None);
    };
    handle.stop(true).await;
    crate::leader::guard(election.clone(), l, role.clone());
    Ok(Some((election, l, role)))
}
