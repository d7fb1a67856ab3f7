//! What a blueprint says about the runtime of real images (fixed host ports, engine health
//! checks, secrets, stop signal and grace, Docker's env names, build target and args), checked
//! end to end through the parser: every problem with its line, column and path.

use super::parse_blueprint;

fn errors(text: &str) -> Vec<String> {
    parse_blueprint("t.yaml", text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_good_runtime_blueprint_parses() {
    let bp = parse_blueprint(
        "t.yaml",
        "\
name: shop
services:
  - id: db
    type: container
    image: postgres:16
    ports: ['5432:5432', 9187, { container: 8080, host: 18080 }]
    env: { discovery.type: single-node, A-B: x, 2X: y }
    secrets: [db_password, { name: tls, target: server.key }]
    stop_signal: SIGINT
    stop_grace_period: 30s
    health: { exec: [pg_isready, -U, app], interval: 2s, retries: 5, start_period: 30s }
  - id: web
    type: cluster
    member:
      build: { context: /srv/web, target: prod, args: { VERSION: '1.2' } }
      ports: [8080]
      health: { test: [CMD-SHELL, 'curl -f localhost:8080'], start_period: 5s }
",
    )
    .unwrap();
    let db = &bp.services[0];
    assert_eq!(db.ports[0].host, Some(5432));
    assert_eq!(db.ports[1], 9187);
    assert_eq!(db.ports[2].host, Some(18080));
    assert_eq!(db.secrets[1].path(), "/run/secrets/server.key");
    assert_eq!(
        db.stop_grace_period,
        Some(std::time::Duration::from_secs(30))
    );
    let h = db.health.as_ref().unwrap();
    assert_eq!(h.unhealthy_threshold, 5);
    let build = bp.services[1]
        .member
        .as_ref()
        .unwrap()
        .build
        .as_ref()
        .unwrap();
    assert_eq!(build.target.as_deref(), Some("prod"));
    assert_eq!(build.args["VERSION"], "1.2");
}

#[test]
fn a_cluster_member_cannot_fix_its_host_port() {
    assert_eq!(
        errors(
            "\
name: shop
services:
  - id: web
    type: cluster
    member:
      image: x
      ports: [8080, '8000:80']
"
        ),
        [
            "t.yaml:7:21: services[0].member.ports[1]: a cluster member cannot fix its host port \
          (8000): members on one host would clash; publish `80` on a free port and put a load \
          balancer (`type: load-balancer`, `port: 8000`) in front"
        ]
    );
}

#[test]
fn bad_ports_have_positions() {
    assert_eq!(
        errors(
            "\
name: shop
services:
  - id: a
    type: container
    image: x
    ports:
      - '8000:80'
      - { container: 81, host: 8000 }
      - '0:82'
"
        ),
        [
            "t.yaml:8:9: services[0].ports[1]: host port 8000 is fixed twice: ports[0] is on 8000 \
             too",
            "t.yaml:9:9: services[0].ports[2]: host port 0 is invalid: leave the host port out to \
             get a free one",
        ]
    );
    assert_eq!(
        errors("name: s\nservices:\n  - { id: a, type: container, image: x, ports: ['1.2.3.4:90:90'] }\n"),
        ["t.yaml:3:49: services[0].ports[0]: `1.2.3.4:90:90` binds an address or a protocol; \
          drover publishes tcp on every address: write `\"HOST:CONTAINER\"`"]
    );
}

#[test]
fn health_check_kinds() {
    let with = |health: &str| {
        errors(&format!(
            "name: shop\nservices:\n  - id: a\n    type: container\n    image: x\n    \
             ports: [80]\n    health: {health}\n"
        ))
    };
    assert_eq!(
        with("{ exec: [a], tcp: { port: 80 } }"),
        ["t.yaml:7:13: services[0].health: a health check has both `tcp` and `exec`; keep exactly one"]
    );
    assert_eq!(
        with("{ exec: [a], test: b, http: { port: 80 } }"),
        [
            "t.yaml:7:13: services[0].health: a health check has `http`, `exec` and `test`; keep \
          exactly one"
        ]
    );
    assert_eq!(
        with("{ test: [RUN, x] }"),
        [
            "t.yaml:7:21: services[0].health.test: `test` starts with `RUN`; it must start with \
          CMD (arguments), CMD-SHELL (a shell command) or NONE"
        ]
    );
    assert_eq!(
        with("{ exec: [] }"),
        [
            "t.yaml:7:21: services[0].health.exec: `exec` needs the command to run, e.g. \
          `exec: [pg_isready, -U, app]`"
        ]
    );
    assert!(parse_blueprint(
        "t.yaml",
        "name: s\nservices:\n  - id: a\n    type: container\n    image: x\n    \
         health: { test: 'pg_isready', start_period: 1m }\n"
    )
    .is_ok());
}

#[test]
fn secrets_stop_and_env() {
    assert_eq!(
        errors(
            "\
name: shop
services:
  - id: a
    type: container
    image: x
    env: { 'A=B': x }
    secrets: [ok, { name: ok, target: /run/secrets/ok }]
    stop_signal: SIGNOPE
  - id: b
    type: cluster
    secrets: [x]
    stop_grace_period: 5s
    member: { image: x }
"
        ),
        [
            "t.yaml:6:12: services[0].env[\"A=B\"]: environment variable name `A=B` is invalid: \
             Docker takes any non-empty name without `=` or NUL",
            "t.yaml:7:19: services[0].secrets[1]: secrets[0] is mounted at /run/secrets/ok too; \
             give one a different `target`",
            "t.yaml:8:18: services[0].stop_signal: `stop_signal` `SIGNOPE` is not a signal: write \
             a name such as SIGTERM, SIGINT, SIGQUIT (or a number from 1 to 64)",
            "t.yaml:11:5: services[1].secrets: `secrets` belongs under `member` for a cluster",
            "t.yaml:12:5: services[1].stop_grace_period: `stop_grace_period` belongs under \
             `member` for a cluster",
        ]
    );
    assert_eq!(
        errors("name: s\nservices:\n  - { id: a, type: container, image: x, secrets: [{ nam: x }] }\n"),
        ["t.yaml:3:51: services[0].secrets[0]: unknown field `nam` in a secret, expected `name` \
          or `target`"]
    );
}

#[test]
fn build_target_and_args_shapes() {
    assert_eq!(
        errors(
            "name: s\nservices:\n  - id: a\n    type: container\n    \
             build: { context: /x, args: 7 }\n"
        ),
        [
            "t.yaml:5:12: services[0].build: `build.args` is a map (`{ NAME: value }`) or a list \
          of `NAME=value`, got Number(7)"
        ]
    );
}
