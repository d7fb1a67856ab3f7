//! What the API's guard (Host, body type, token and role checks) adds to a
//! request: the same GET served by two in-process servers, one behind
//! `drover::api::auth::Guard` with a bearer token, one without, measured
//! alternately in the same run over keep-alive connections.
//!
//! `cargo bench --bench auth` (no Docker needed). Prints p50/p99 of each
//! and of the guard with 100 tokens in force (every stored hash is
//! compared, in constant time), and the cost of one token check alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use drover::api::auth::{AuthConfig, Guard};
use drover::api::tokens::Tokens;
use drover::wire::{Role, TokenRequest};

const N: usize = 5_000;

async fn apps() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!([{"id": "shop", "state": "running"}]))
}

/// Starts the two servers; answers their ports and the token.
fn start(tokens_in_force: usize) -> (u16, u16, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let tokens = Tokens::new(vec![], None).unwrap();
            for i in 1..tokens_in_force {
                tokens
                    .create(TokenRequest {
                        name: format!("other-{i}"),
                        role: Role::Viewer,
                    })
                    .await
                    .unwrap();
            }
            let mine = tokens
                .create(TokenRequest {
                    name: "bench".into(),
                    role: Role::Viewer,
                })
                .await
                .unwrap()
                .token;
            let config = Arc::new(AuthConfig {
                tokens: Arc::new(tokens),
                allow_hosts: vec![],
            });
            let guarded = HttpServer::new(move || {
                App::new()
                    .wrap(Guard::new(config.clone()))
                    .route("/v1/applications", web::get().to(apps))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
            let open =
                HttpServer::new(|| App::new().route("/v1/applications", web::get().to(apps)))
                    .workers(1)
                    .bind("127.0.0.1:0")
                    .unwrap();
            let (g, o) = (guarded.addrs()[0].port(), open.addrs()[0].port());
            tx.send((g, o, mine)).unwrap();
            let _ = futures_util::future::join(guarded.run(), open.run()).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("servers start")
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i]
}

fn measure(tokens_in_force: usize) {
    let (guarded, open, token) = start(tokens_in_force);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let bearer = format!("Bearer {token}");
    let get = |port: u16, auth: bool| -> f64 {
        let mut req = agent.get(&format!("http://127.0.0.1:{port}/v1/applications"));
        if auth {
            req = req.header("authorization", &bearer);
        }
        let t0 = Instant::now();
        let mut r = req.call().expect("answers");
        let _ = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status(), 200);
        t0.elapsed().as_secs_f64() * 1e6
    };
    for _ in 0..500 {
        get(guarded, true);
        get(open, false);
    }
    let (mut with, mut without) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for _ in 0..N {
        with.push(get(guarded, true));
        without.push(get(open, false));
    }
    let (p50w, p99w) = (percentile(&mut with, 0.5), percentile(&mut with, 0.99));
    let (p50o, p99o) = (
        percentile(&mut without, 0.5),
        percentile(&mut without, 0.99),
    );
    println!(
        "tokens in force {tokens_in_force:>3}: GET with auth p50 {p50w:.0} us p99 {p99w:.0} us; without p50 {p50o:.0} us p99 {p99o:.0} us; added p50 {:+.0} us p99 {:+.0} us ({N} requests each, alternating)",
        p50w - p50o,
        p99w - p99o
    );
}

fn check_alone() {
    let rt = actix_rt::System::new();
    let (tokens, token) = rt.block_on(async {
        let t = Tokens::new(vec![], None).unwrap();
        let tok = t
            .create(TokenRequest {
                name: "bench".into(),
                role: Role::Admin,
            })
            .await
            .unwrap()
            .token;
        (t, tok)
    });
    let n = 200_000;
    let t0 = Instant::now();
    for _ in 0..n {
        assert!(tokens.authenticate(std::hint::black_box(&token)).is_some());
    }
    println!(
        "one token check alone (SHA-256 and compare, 1 token): {:.2} us",
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    check_alone();
    measure(1);
    measure(100);
}
